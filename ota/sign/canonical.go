package sign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// SignatureField is the top-level member of a job document that carries its
// signature and is left out of the canonical form.
const SignatureField = "signature"

// maxJSONDepth bounds the nesting of a document (the top-level object is
// level 1), so hostile input cannot exhaust the stack.
const maxJSONDepth = 64

// CanonicalJSON returns the canonical form of doc without its top-level
// "signature" member (see the package doc for the rule). doc is the
// document's JSON text ([]byte, json.RawMessage or string), or a value such as
// map[string]any that encoding/json encodes to an object.
func CanonicalJSON(doc any) ([]byte, error) {
	obj, err := decodeDocument(doc)
	if err != nil {
		return nil, err
	}
	return canonicalObject(obj)
}

// decodeDocument turns doc into a JSON object with json.Number numbers,
// refusing duplicate keys and trailing data.
func decodeDocument(doc any) (map[string]any, error) {
	var text []byte
	switch d := doc.(type) {
	case []byte:
		text = d
	case json.RawMessage:
		text = d
	case string:
		text = []byte(d)
	default:
		var err error
		if text, err = json.Marshal(doc); err != nil {
			return nil, fmt.Errorf("canonical JSON: encode document: %w", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("canonical JSON: data after the document")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("canonical JSON: document is %T, want an object", v)
	}
	return obj, nil
}

// decodeValue reads one JSON value from dec.
func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth >= maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := map[string]any{}
			for dec.More() {
				keyTok, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := keyTok.(string)
				if !ok {
					return nil, fmt.Errorf("object key is %v", keyTok)
				}
				if _, dup := obj[key]; dup {
					return nil, fmt.Errorf("duplicate key %q", key)
				}
				if obj[key], err = decodeValue(dec, depth+1); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return arr, nil
		default:
			return nil, fmt.Errorf("unexpected %v", t)
		}
	default: // string, json.Number, bool, nil
		return t, nil
	}
}

// canonicalObject encodes obj without its signature member: sorted keys, no
// white space, no HTML escaping.
func canonicalObject(obj map[string]any) ([]byte, error) {
	unsigned := make(map[string]any, len(obj))
	for k, v := range obj {
		if k != SignatureField {
			unsigned[k] = v
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(unsigned); err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
