package berthcmd

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/berthhq/berth/client"
)

// progress shows what a pull, push or copy does: a bar per blob on a terminal, one plain
// line per blob event otherwise, nothing with --json.
type progress interface {
	// event receives the client's progress events, from several goroutines at once.
	event(client.ProgressEvent)
	// finish stops the display; failed marks unfinished bars aborted.
	finish(failed bool)
}

// newProgress picks the display for w.
func newProgress(w io.Writer, quiet, terminal bool) progress {
	switch {
	case quiet:
		return nopProgress{}
	case terminal:
		return newBarProgress(w, mpb.WithRefreshRate(120*time.Millisecond))
	}
	return &lineProgress{w: w}
}

type nopProgress struct{}

func (nopProgress) event(client.ProgressEvent) {}
func (nopProgress) finish(bool)                {}

// shortDigest is a digest cut to 12 hex digits, as Docker shows layers.
func shortDigest(d client.Descriptor) string {
	s := d.Digest.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return d.Digest.Algorithm().String() + ":" + s
}

// lineProgress prints one line per blob state change (no per-chunk lines), for logs.
type lineProgress struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *lineProgress) event(e client.ProgressEvent) {
	var what string
	switch e.Kind {
	case client.BlobStarted:
		what = "copying"
	case client.BlobDone:
		what = "done"
	case client.BlobExists:
		what = "exists"
	case client.BlobMounted:
		what = "mounted"
	case client.ManifestDone:
		p.mu.Lock()
		fmt.Fprintf(p.w, "%s: manifest written\n", e.Descriptor.Digest)
		p.mu.Unlock()
		return
	default:
		return
	}
	p.mu.Lock()
	fmt.Fprintf(p.w, "%s: %-7s %s\n", shortDigest(e.Descriptor), what, humanSize(e.Descriptor.Size))
	p.mu.Unlock()
}

func (p *lineProgress) finish(bool) {}

// barProgress draws a bar per blob being moved.
type barProgress struct {
	mu   sync.Mutex
	p    *mpb.Progress
	bars map[string]*mpb.Bar // by digest, while moving
}

func newBarProgress(w io.Writer, opts ...mpb.ContainerOption) *barProgress {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(40)}, opts...)
	return &barProgress{p: mpb.New(opts...), bars: map[string]*mpb.Bar{}}
}

func (p *barProgress) event(e client.ProgressEvent) {
	key := e.Descriptor.Digest.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case client.BlobStarted:
		if old, ok := p.bars[key]; ok {
			old.Abort(false)
		}
		p.bars[key] = p.p.AddBar(max(e.Descriptor.Size, 0),
			mpb.PrependDecorators(decor.Name(shortDigest(e.Descriptor)+" ", decor.WCSyncSpaceR)),
			mpb.AppendDecorators(
				// Sizes as the line display and inspect print them.
				decor.Any(func(s decor.Statistics) string {
					return humanSize(s.Current) + " / " + humanSize(s.Total)
				}, decor.WCSyncSpace),
				decor.OnComplete(decor.Percentage(decor.WCSyncSpace), " done"),
			))
	case client.BlobProgress:
		if b, ok := p.bars[key]; ok {
			b.SetCurrent(e.Transferred)
		}
	case client.BlobDone:
		if b, ok := p.bars[key]; ok {
			b.SetTotal(e.Descriptor.Size, true)
			b.SetCurrent(e.Descriptor.Size)
			delete(p.bars, key)
		}
	case client.BlobExists, client.BlobMounted:
		what := "exists"
		if e.Kind == client.BlobMounted {
			what = "mounted"
		}
		fmt.Fprintf(p.p, "%s %s %s\n", shortDigest(e.Descriptor), what, humanSize(e.Descriptor.Size))
	}
}

func (p *barProgress) finish(failed bool) {
	p.mu.Lock()
	for k, b := range p.bars {
		if failed {
			b.Abort(false)
		} else {
			b.SetTotal(-1, true)
		}
		delete(p.bars, k)
	}
	p.mu.Unlock()
	p.p.Wait()
}

// humanSize renders a byte count in binary units: the one way berth prints sizes (progress
// bars, progress lines, inspect).
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
