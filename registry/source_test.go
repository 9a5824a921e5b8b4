package registry

import "testing"

func TestListStart(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		last, out, in, start string
		none                 bool
	}{
		{"", "all/", "local/", "local/", false},
		{"all/x", "all/", "local/", "local/x", false},
		{"alm", "all/", "local/", "", true},
		{"all", "all/", "local/", "local/", false},
		{"a", "all/", "", "", false},
		{"zzz", "", "hub/", "hub/zzz", false},
	} {
		start, none := ListStart(c.last, c.out, c.in)
		if start != c.start || none != c.none {
			t.Errorf("ListStart(%q, %q, %q) = %q, %v; want %q, %v", c.last, c.out, c.in, start, none, c.start, c.none)
		}
	}
}
