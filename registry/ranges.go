package registry

import (
	"errors"
	"strconv"
	"strings"
)

var errBadRange = errors.New("malformed range")

// parseByteRange parses a Range header of a blob GET against a blob of the
// given size. It understands one range ("bytes=a-b", "bytes=a-",
// "bytes=-n") and returns the first and last byte offsets. multi is true
// for a list of ranges, which berth answers with the whole blob, as
// RFC 9110 allows. An unsatisfiable range returns ok false with a nil error;
// a malformed header returns errBadRange (also answered with the whole
// blob, since a server must ignore a Range it cannot parse).
func parseByteRange(h string, size int64) (first, last int64, multi, ok bool, err error) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return 0, 0, false, false, errBadRange
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return 0, 0, true, false, nil
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, false, errBadRange
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	switch {
	case a == "" && b == "":
		return 0, 0, false, false, errBadRange
	case a == "":
		n, err := parseOffset(b)
		if err != nil {
			return 0, 0, false, false, err
		}
		if n == 0 || size == 0 {
			return 0, 0, false, false, nil
		}
		if n > size {
			n = size
		}
		return size - n, size - 1, false, true, nil
	}
	first, err = parseOffset(a)
	if err != nil {
		return 0, 0, false, false, err
	}
	last = size - 1
	if b != "" {
		if last, err = parseOffset(b); err != nil {
			return 0, 0, false, false, err
		}
		if last < first {
			return 0, 0, false, false, nil
		}
		if last >= size {
			last = size - 1
		}
	}
	if first >= size {
		return 0, 0, false, false, nil
	}
	return first, last, false, true, nil
}

func parseOffset(s string) (int64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, errBadRange
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errBadRange
	}
	return n, nil
}

// parseContentRange parses the Content-Range header of an upload chunk:
// "start-end" with inclusive offsets, as the distribution spec writes it
// (a "bytes " prefix and a "/total" suffix are tolerated, since some
// clients send RFC 9110's form).
func parseContentRange(h string) (start, end int64, err error) {
	s := strings.TrimSpace(h)
	s = strings.TrimPrefix(s, "bytes ")
	s = strings.TrimPrefix(s, "bytes=")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, errBadRange
	}
	if start, err = parseOffset(a); err != nil {
		return 0, 0, err
	}
	if end, err = parseOffset(b); err != nil {
		return 0, 0, err
	}
	if end < start {
		return 0, 0, errBadRange
	}
	return start, end, nil
}
