package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/storage/driver/s3"
)

// renamed is a setting that was an integer count of a unit and is now a
// duration: the old key is refused with a message that names the new one
// and writes the old value in the new form.
type renamed struct {
	in       reflect.Type // the struct the key belongs to
	old, new string       // yaml names
	unit     time.Duration
	example  string // written when the old value is not a whole number
}

var renames = []renamed{
	{reflect.TypeFor[Uploads](), "maxAgeHours", "maxAge", time.Hour, "168h"},
	{reflect.TypeFor[s3.Config](), "redirectExpirySeconds", "redirectExpiry", time.Second, "20m"},
	{reflect.TypeFor[Token](), "ttlSeconds", "ttl", time.Second, "5m"},
	{reflect.TypeFor[Token](), "refreshHours", "refreshTTL", time.Hour, "720h"},
	{reflect.TypeFor[Token](), "leewaySeconds", "leeway", time.Second, "60s"},
	{reflect.TypeFor[gc.Config](), "intervalHours", "interval", time.Hour, "24h"},
	{reflect.TypeFor[gc.Config](), "graceHours", "grace", time.Hour, "24h"},
	{reflect.TypeFor[gc.Rule](), "untaggedAfterHours", "untaggedAfter", time.Hour, "168h"},
	{reflect.TypeFor[connector.Registry](), "tagTTLSeconds", "tagTTL", time.Second, "5m"},
	{reflect.TypeFor[connector.Registry](), "notFoundTTLSeconds", "notFoundTTL", time.Second, "30s"},
	{reflect.TypeFor[connector.Registry](), "catalogTTLSeconds", "catalogTTL", time.Second, "5m"},
	{reflect.TypeFor[connector.Registry](), "probeIntervalSeconds", "probeInterval", time.Second, "30s"},
	{reflect.TypeFor[connector.Upstream](), "timeoutSeconds", "timeout", time.Second, "10s"},
}

// findRename returns the rename of key in t, if it is one.
func findRename(t reflect.Type, key string) (renamed, bool) {
	for _, r := range renames {
		if r.in == t && r.old == key {
			return r, true
		}
	}
	return renamed{}, false
}

// value writes the old setting's value s in the new form ("24" hours is
// "24h", "300" seconds "5m"), or the example when s is not a whole number.
func (r renamed) value(s string) string {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil || n < 0 {
		return r.example
	}
	if r.unit == time.Hour {
		return fmt.Sprintf("%dh", n)
	}
	switch {
	case n == 0:
		return "0s"
	case n%3600 == 0:
		return fmt.Sprintf("%dh", n/3600)
	case n%60 == 0:
		return fmt.Sprintf("%dm", n/60)
	}
	return fmt.Sprintf("%ds", n)
}

// unknownEnv is the error for variable k (set to v) that names no
// setting: a renamed one names its new variable, a near miss the
// variable meant.
func unknownEnv(k, v string, keys map[string]reflect.Value) error {
	if r, newKey, ok := renamedEnv(reflect.TypeFor[Config](), EnvPrefix, k); ok {
		return fmt.Errorf("environment variable %s was renamed: set %s=%s", k, newKey, r.value(v))
	}
	for _, kind := range []pluginKind{storageKind, metadataKind} {
		for _, name := range kind.names() {
			cfg, ok := kind.config(name)
			if !ok {
				continue
			}
			prefix := EnvPrefix + strings.ToUpper(kind.key) + "_" + strings.ToUpper(name) + "_"
			if r, newKey, ok := renamedEnv(reflect.TypeOf(cfg).Elem(), prefix, k); ok {
				return fmt.Errorf("environment variable %s was renamed: set %s=%s", k, newKey, r.value(v))
			}
		}
	}
	names := sortedKeys(keys)
	suffixes := make([]string, len(names))
	for i, n := range names {
		suffixes[i] = strings.TrimPrefix(n, EnvPrefix)
	}
	if s, ok := nearest(strings.TrimPrefix(k, EnvPrefix), suffixes); ok {
		return fmt.Errorf("environment variable %s names no setting; did you mean %s%s?", k, EnvPrefix, s)
	}
	return fmt.Errorf("environment variable %s names no setting (known: %s)", k, strings.Join(names, ", "))
}

// renamedEnv finds variable k among the old names of renamed settings in
// struct t, whose variables start with prefix, and returns the rename and
// the new variable.
func renamedEnv(t reflect.Type, prefix, k string) (renamed, string, bool) {
	for _, r := range renames {
		if r.in == t && prefix+strings.ToUpper(r.old) == k {
			return r, prefix + strings.ToUpper(r.new), true
		}
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.ToUpper(strings.Split(f.Tag.Get("yaml"), ",")[0])
		if name == "" || name == "-" || f.Type.Kind() != reflect.Struct {
			continue
		}
		if r, newKey, ok := renamedEnv(f.Type, prefix+name+"_", k); ok {
			return r, newKey, true
		}
	}
	return renamed{}, "", false
}

// maxWalk bounds the nodes checkDocument visits, so aliases that expand
// without end cost nothing here (the decoder refuses them).
const maxWalk = 100000

// checker walks a YAML document alongside the Go type it decodes into,
// before it is decoded, and collects what the decoder would refuse
// unhelpfully or accept wrongly.
type checker struct {
	problems []error
	visits   int
	aliases  map[*yaml.Node]bool // being walked: a cycle stops here
}

// checkDocument reports, each with its line, keys that name no setting
// (with the nearest known key when one is close), renamed keys (with the
// new key and its form), numbers with a fraction where the setting is an
// integer (the decoder would drop the fraction), bare numbers where it is
// a duration (the unit would be a guess) and durations that do not parse.
func checkDocument(n *yaml.Node, t reflect.Type) error {
	c := &checker{aliases: map[*yaml.Node]bool{}}
	c.walk(n, t, "")
	return errors.Join(c.problems...)
}

func (c *checker) bad(n *yaml.Node, format string, args ...any) {
	c.problems = append(c.problems, fmt.Errorf("line %d: %s", n.Line, fmt.Sprintf(format, args...)))
}

func (c *checker) walk(n *yaml.Node, t reflect.Type, path string) {
	if c.visits++; c.visits > maxWalk {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != durationType && reflect.PointerTo(t).Implements(unmarshalerType) {
		// The section decodes itself, as strictly (the storage and
		// metadata sections, with their registered backends): a trial
		// decode reports its problems with the others.
		if err := reflect.New(t).Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			c.problems = append(c.problems, err)
		}
		return
	}
	switch {
	case n.Kind == yaml.DocumentNode:
		for _, ch := range n.Content {
			c.walk(ch, t, path)
		}
	case n.Kind == yaml.AliasNode && n.Alias != nil:
		if !c.aliases[n.Alias] {
			c.aliases[n.Alias] = true
			c.walk(n.Alias, t, path)
			delete(c.aliases, n.Alias)
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				c.walkMerge(v, t, path)
				continue
			}
			if f, ok := fieldByYAMLName(t, k.Value); ok {
				c.walk(v, f.Type, join(path, k.Value))
				continue
			}
			c.unknownKey(k, v, t, path)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, ch := range n.Content {
			c.walk(ch, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case n.Kind == yaml.ScalarNode && t == durationType && (n.Tag == "!!int" || n.Tag == "!!float"):
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil && v == 0 {
			c.bad(n, "%s: %q needs a unit: write 0s", path, n.Value)
			break
		}
		c.bad(n, "%s: %q needs a unit: write a duration like 90s, 5m or 24h", path, n.Value)
	case n.Kind == yaml.ScalarNode && t == durationType && n.Tag == "!!str":
		if _, err := time.ParseDuration(n.Value); err != nil {
			c.bad(n, "%s: %q is not a duration (write it like 90s, 5m or 24h)", path, n.Value)
		}
	case n.Kind == yaml.ScalarNode && isIntKind(t.Kind()) && n.Tag == "!!float":
		c.bad(n, "%s: %q is not a whole number", path, n.Value)
	}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// walkMerge walks the value of a merge key ("<<: *defaults"): one mapping
// or a list of them, whose keys belong to the mapping merged into.
func (c *checker) walkMerge(v *yaml.Node, t reflect.Type, path string) {
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			c.walk(m, t, path)
		}
		return
	}
	c.walk(v, t, path)
}

// unknownKey reports key k (with value v) that struct t has no field for.
func (c *checker) unknownKey(k, v *yaml.Node, t reflect.Type, path string) {
	key := join(path, k.Value)
	if r, ok := findRename(t, k.Value); ok {
		val := r.example
		if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
			val = r.value(v.Value)
		}
		c.bad(k, "%s was renamed: write %s: %s", key, join(path, r.new), val)
		return
	}
	known := yamlNames(t)
	if s, ok := nearest(k.Value, known); ok {
		c.bad(k, "%s names no setting; did you mean %s?", key, join(path, s))
		return
	}
	where := "here"
	if path != "" {
		where = "in " + path
	}
	c.bad(k, "%s names no setting (known %s: %s)", key, where, strings.Join(known, ", "))
}

// yamlNames lists the keys struct t accepts, sorted.
func yamlNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case strings.Contains(opts, "inline"):
			out = append(out, yamlNames(f.Type)...)
		case name == "":
			out = append(out, strings.ToLower(f.Name))
		default:
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// fieldByYAMLName finds the struct field a YAML key decodes into.
func fieldByYAMLName(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			if sf, ok := fieldByYAMLName(f.Type, key); ok {
				return sf, true
			}
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// nearest returns the candidate closest to s by edit distance (letter case
// aside), when it is close: at most 2 edits or a third of the longer of
// the two, and fewer edits than s has letters. Ties go to the first in
// sorted order.
func nearest(s string, candidates []string) (string, bool) {
	ls := strings.ToLower(s)
	best, bestD := "", -1
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, cand := range sorted {
		d := distance(ls, strings.ToLower(cand))
		if d < len(s) && d <= max(2, max(len(s), len(cand))/3) && (bestD < 0 || d < bestD) {
			best, bestD = cand, d
		}
	}
	return best, bestD >= 0
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours, each one
// edit ("maxsize" and "maxisze" are one apart).
func distance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j]; three rows suffice.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
