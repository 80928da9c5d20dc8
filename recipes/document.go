package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Limits on what a file may make the parser do. Real recipes nest a handful
// of levels and weigh a few KiB; the limits are far above that, yet keep a
// hostile file, which is parsed before its signature is checked, from
// costing more than a small multiple of its size.
const (
	// maxFileSize bounds a recipe, a manifest and each imported file. The
	// TOML reader, which reads a file twice (once for positions and the
	// depth check, once to decode it), allocates over 300 times the size of
	// a file made of many small tables, and spends time in the square of
	// the number of keys; at 32 KiB both stay small.
	maxFileSize = 32 << 10
	// maxKeyDepth bounds the parts of a field path: each part of a dotted
	// key or of a [table] or [[array]] header, each key of an inline table
	// and each array element (the [i] of an [[array]] too) is one, however
	// they are combined.
	maxKeyDepth = 64
)

// document is one TOML file read into a generic tree, with the position of
// every key, table header and array element it contains.
type document struct {
	name string
	tree map[string]any
	pos  *posIndex
}

// parseDocument reads TOML text. A syntax error (including a key defined
// twice), a file too large or a path too deep is returned as the only
// FieldError: past it nothing can be trusted. Depth is checked before the
// decoder runs, as decoding a deep path is what costs.
func parseDocument(name string, data []byte) (*document, *FieldError) {
	if len(data) > maxFileSize {
		// Name the first byte past the limit, as a position.
		before := data[:maxFileSize]
		line := bytes.Count(before, []byte("\n")) + 1
		col := len(before) - bytes.LastIndexByte(before, '\n')
		return nil, &FieldError{File: name, Line: line, Col: col, Message: fmt.Sprintf(
			"the file is larger than %d bytes (32 KiB), the most a recipe, manifest or import may be", maxFileSize)}
	}
	ix := newIndexer(nil)
	if _, ok := ix.walk(data); !ok && ix.tooDeep != nil {
		return nil, ix.tooDeepError(name)
	}
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		fe := &FieldError{File: name, Message: strings.TrimPrefix(err.Error(), "toml: ")}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			fe.Line, fe.Col = de.Position()
			fe.Path = pathAt(data, fe.Line, fe.Col)
		}
		return nil, fe
	}
	if tree == nil {
		tree = map[string]any{}
	}
	return &document{name: name, tree: tree, pos: ix.pos}, nil
}

// pathAt names the field a syntax error at line:col is about: the key or
// header written exactly there (the second of two definitions of a key), or
// else the key of the `key = value` that line starts, inside the table
// that the lines before it are in. "" when neither can be told.
func pathAt(data []byte, line, col int) string {
	ix := newIndexer(&position{int32(line), int32(col)})
	ix.walk(data)
	if ix.found != "" {
		return ix.found
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return ""
	}
	before := newIndexer(nil)
	table, ok := before.walk(bytes.Join(lines[:line-1], nil))
	keyText, _, hasValue := bytes.Cut(lines[line-1], []byte("="))
	if !ok || !hasValue {
		return ""
	}
	key := newIndexer(nil)
	if _, ok := key.walk(append(bytes.Clone(keyText), " = 0"...)); !ok || key.longest == nil {
		return ""
	}
	if table == &before.pos.root {
		return key.longest.path()
	}
	return table.path() + "." + key.longest.path()
}
