package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// A manifest must mean the same thing to every parser that reads it: the
// registry, garbage collection and each client. encoding/json takes the
// last of two equal keys and matches field names regardless of case, while
// other parsers take the first key or match case exactly, so a manifest
// with a key twice, or with "Layers" beside "layers", can show one parser
// layers another does not see (the CVE-2021-41190 class). checkStrictJSON
// refuses such documents before they are parsed.

// jsonSchema names the fields of an object encoding/json decodes into a
// struct, and the schema of each field's value. Objects decoded into maps
// (annotations) and values berth ignores have no schema: any key goes, but
// never twice.
type jsonSchema struct {
	fields map[string]*jsonSchema
	// elem is the schema of an array's elements.
	elem *jsonSchema
}

var (
	platformSchema   = &jsonSchema{fields: map[string]*jsonSchema{"os": nil, "architecture": nil, "variant": nil, "os.version": nil, "os.features": nil, "features": nil}}
	descriptorSchema = &jsonSchema{fields: map[string]*jsonSchema{
		"mediaType": nil, "digest": nil, "size": nil, "urls": nil, "artifactType": nil, "annotations": nil, "data": nil,
		"platform": platformSchema,
	}}
	descriptorList = &jsonSchema{elem: descriptorSchema}
	manifestSchema = &jsonSchema{fields: map[string]*jsonSchema{
		"schemaVersion": nil, "mediaType": nil, "artifactType": nil, "annotations": nil,
		"config": descriptorSchema, "layers": descriptorList, "manifests": descriptorList, "subject": descriptorSchema,
	}}
)

// jsonFrame is an open object or array while checkStrictJSON walks a
// document.
type jsonFrame struct {
	object bool
	schema *jsonSchema
	keys   map[string]struct{}
	// key is true when the next token of an object is a key.
	key bool
	// next is the schema of the value that follows the last key.
	next *jsonSchema
}

// checkStrictJSON returns a MANIFEST_INVALID error if body has an object
// with a key twice, or a field berth reads spelled in another case.
func checkStrictJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*jsonFrame
	// valueSchema is the schema of the value about to start.
	valueSchema := func() *jsonSchema {
		if len(stack) == 0 {
			return manifestSchema
		}
		top := stack[len(stack)-1]
		if top.object {
			return top.next
		}
		if top.schema != nil {
			return top.schema.elem
		}
		return nil
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			// Syntax errors are reported by the parse that follows.
			return nil
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				top = nil
				if len(stack) > 0 {
					stack[len(stack)-1].key = true
				}
				continue
			}
			k, _ := tok.(string)
			if _, dup := top.keys[k]; dup {
				return errf(ErrManifestInvalid, "manifest has the key %q twice in one object", k)
			}
			top.keys[k] = struct{}{}
			top.key, top.next = false, nil
			if top.schema != nil {
				if child, ok := top.schema.fields[k]; ok {
					top.next = child
				} else {
					for name := range top.schema.fields {
						if strings.EqualFold(name, k) {
							return errf(ErrManifestInvalid, "manifest field %q must be spelled %q", k, name)
						}
					}
				}
			}
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			stack = append(stack, &jsonFrame{object: true, schema: valueSchema(), keys: map[string]struct{}{}, key: true})
			continue
		case '[':
			stack = append(stack, &jsonFrame{schema: valueSchema()})
			continue
		case ']':
			stack = stack[:len(stack)-1]
		}
		// A value (or the end of an array) completes: an enclosing
		// object waits for its next key.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
		if len(stack) == 0 {
			return nil
		}
	}
}

// ambiguous returns a MANIFEST_INVALID error if doc, whose media type is mt
// (from its mediaType field, the Content-Type, or neither when declared is
// false), could be read as both an image and an index.
func ambiguous(doc *manifestDoc, mt string, declared bool) error {
	switch {
	case !declared && doc.Config != nil && doc.Manifests != nil:
		return errf(ErrManifestInvalid, "manifest has both config and manifests and no mediaType to tell an image from an index")
	case !declared && doc.Layers != nil && doc.Manifests != nil:
		return errf(ErrManifestInvalid, "manifest has both layers and manifests and no mediaType to tell an image from an index")
	case isIndex(mt) && doc.Config != nil:
		return errf(ErrManifestInvalid, "%s cannot have a config", indexKind(mt))
	case isIndex(mt) && doc.Layers != nil:
		return errf(ErrManifestInvalid, "%s cannot have layers", indexKind(mt))
	case isImage(mt) && doc.Manifests != nil:
		return errf(ErrManifestInvalid, "an image manifest cannot list manifests")
	}
	return nil
}

func indexKind(mt string) string {
	if mt == MediaTypeDockerList {
		return "a manifest list"
	}
	return fmt.Sprintf("an index (%s)", mt)
}
