package gc

import (
	"fmt"
	"io"
	"strings"
)

// Summary is one line saying what the collection freed (or would free).
func (r *Report) Summary() string {
	verb, removeVerb := "freed", "removed"
	if r.DryRun {
		verb, removeVerb = "dry run: would free", "would remove"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%s); %s %s, %s and %s; %s examined",
		verb, plural(len(r.Blobs), "blob"), FormatBytes(r.BytesFreed()),
		removeVerb, plural(len(r.Manifests), "manifest"), plural(len(r.Links), "blob link"), plural(len(r.Tags), "tag"),
		plural(r.Repositories, "repository"))
	if n := len(r.Errors); n > 0 {
		fmt.Fprintf(&b, "; %s", plural(n, "failure"))
	}
	return b.String()
}

// removals are the removed items of a report by kind.
type removals struct {
	kind  string // tag, manifest, link or blob
	items []Item
}

// removed returns r's removed items by kind, in the order tags, manifests,
// blob links, blobs.
func (r *Report) removed() []removals {
	return []removals{{"tag", r.Tags}, {"manifest", r.Manifests}, {"link", r.Links}, {"blob", r.Blobs}}
}

// WriteList writes one line per removed item: its kind, what it is and its
// size, in the order tags, manifests, blob links, blobs.
func (r *Report) WriteList(w io.Writer) error {
	for _, group := range r.removed() {
		for _, it := range group.items {
			var err error
			switch {
			case group.kind == "tag":
				_, err = fmt.Fprintf(w, "%-8s %s:%s\n", group.kind, it.Repository, it.Ref)
			case it.Repository == "":
				_, err = fmt.Fprintf(w, "%-8s %s %s\n", group.kind, it.Ref, FormatBytes(it.Size))
			default:
				_, err = fmt.Fprintf(w, "%-8s %s@%s %s\n", group.kind, it.Repository, it.Ref, FormatBytes(it.Size))
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// plural formats a count with its noun.
func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "y"):
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// FormatBytes formats a size in binary units: 512 B, 1.5 KiB, 3.2 GiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
