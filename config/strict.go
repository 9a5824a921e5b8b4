package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// checkIntegers walks a YAML document alongside the Go type it decodes
// into and reports numbers with a fraction where the setting is an
// integer: the YAML decoder would silently drop the fraction.
func checkIntegers(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkIntegers(c, t, path); err != nil {
				return err
			}
		}
	case n.Kind == yaml.AliasNode && n.Alias != nil:
		return checkIntegers(n.Alias, t, path)
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if f, ok := fieldByYAMLName(t, key); ok {
				if err := checkIntegers(n.Content[i+1], f.Type, join(path, key)); err != nil {
					return err
				}
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkIntegers(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkIntegers(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case n.Kind == yaml.ScalarNode && t == durationType && (n.Tag == "!!int" || n.Tag == "!!float"):
		// The YAML decoder would read a bare number as nanoseconds.
		return fmt.Errorf("line %d: %s: %q needs a unit: write a duration like 90s, 5m or 24h", n.Line, path, n.Value)
	case n.Kind == yaml.ScalarNode && isIntKind(t.Kind()) && n.Tag == "!!float":
		return fmt.Errorf("line %d: %s: %q is not a whole number", n.Line, path, n.Value)
	}
	return nil
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
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
