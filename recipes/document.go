package recipes

import (
	"bytes"
	"errors"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// document is one TOML file read into a generic tree, with the position of
// every key, table header and array element it contains.
type document struct {
	name string
	tree map[string]any
	pos  positions
}

// position is a line and column, both from 1.
type position struct{ line, col int }

// positions maps a field path to where it is first written in a file.
type positions map[string]position

// find returns the position of path or, when the file does not write it,
// of its nearest ancestor that it does write.
func (p positions) find(path string) (position, bool) {
	for {
		if at, ok := p[path]; ok {
			return at, true
		}
		parent, ok := parentPath(path)
		if !ok {
			return position{}, false
		}
		path = parent
	}
}

// parseDocument reads TOML text. A syntax error (including a key defined
// twice) is returned as the only FieldError: past it nothing can be trusted.
func parseDocument(name string, data []byte) (*document, *FieldError) {
	var tree map[string]any
	err := toml.Unmarshal(data, &tree)
	if err != nil {
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
	return &document{name: name, tree: tree, pos: indexPositions(data)}, nil
}

// indexPositions walks the TOML syntax tree and records where each key,
// table header and array element starts. It follows TOML's rules for
// [table] and [[array]] headers so that paths match the decoded tree.
// It gives up quietly at a syntax error; the decoder reports that.
func indexPositions(data []byte) positions {
	ix := &indexer{pos: positions{}, arrays: map[string]int{}}
	ix.walk(data)
	return ix.pos
}

// pathAt names the field a syntax error at line:col is about: the key or
// header written exactly there (the second of two definitions of a key), or
// else the key of the `key = value` that line starts, inside the table
// that the lines before it are in. "" when neither can be told.
func pathAt(data []byte, line, col int) string {
	ix := &indexer{pos: positions{}, arrays: map[string]int{}, at: &position{line, col}}
	ix.walk(data)
	if ix.found != "" {
		return ix.found
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return ""
	}
	before := &indexer{pos: positions{}, arrays: map[string]int{}}
	table, ok := before.walk(bytes.Join(lines[:line-1], nil))
	keyText, _, hasValue := bytes.Cut(lines[line-1], []byte("="))
	if !ok || !hasValue {
		return ""
	}
	key := &indexer{pos: positions{}, arrays: map[string]int{}}
	if _, ok := key.walk(append(bytes.Clone(keyText), " = 0"...)); !ok {
		return ""
	}
	longest := ""
	for p := range key.pos {
		if len(p) > len(longest) {
			longest = p
		}
	}
	if longest == "" || table == "" {
		return longest
	}
	return table + "." + longest
}

// walk indexes a document; it returns the path of the table the document
// ends in, and false when it stopped at a syntax error.
func (ix *indexer) walk(data []byte) (string, bool) {
	ix.lineStarts = append(ix.lineStarts[:0], 0)
	for i, c := range data {
		if c == '\n' {
			ix.lineStarts = append(ix.lineStarts, i+1)
		}
	}
	ix.p.Reset(data)
	table := ""
	for ix.p.NextExpression() {
		e := ix.p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = ix.header(e)
		case unstable.KeyValue:
			ix.keyValue(table, e)
		}
	}
	return table, ix.p.Error() == nil
}

type indexer struct {
	p   unstable.Parser
	pos positions
	// arrays counts the elements of each array of tables seen so far, keyed
	// by the array's path.
	arrays map[string]int
	// at, when set, asks for the path written at that position; the
	// longest one found there goes to found.
	at    *position
	found string
	// lineStarts holds the offset of each line's first byte.
	lineStarts []int
}

// position turns a byte offset into a line and a byte column, both from 1,
// as go-toml counts them.
func (ix *indexer) position(offset int) position {
	line := sort.Search(len(ix.lineStarts), func(i int) bool { return ix.lineStarts[i] > offset })
	return position{line: line, col: offset - ix.lineStarts[line-1] + 1}
}

// set records the position of a node under path, unless the path already
// has one or the node has no place in the input.
func (ix *indexer) set(path string, n *unstable.Node) {
	if n.Raw.Length == 0 {
		return
	}
	at := ix.position(int(n.Raw.Offset))
	if ix.at != nil && *ix.at == at && len(path) > len(ix.found) {
		ix.found = path
	}
	if _, ok := ix.pos[path]; !ok {
		ix.pos[path] = at
	}
}

// header handles [a.b] and [[a.b]] and returns the table's path.
func (ix *indexer) header(e *unstable.Node) string {
	var keys []*unstable.Node
	it := e.Key()
	for it.Next() {
		keys = append(keys, it.Node())
	}
	cur := ""
	for i, k := range keys {
		cur = joinKey(cur, string(k.Data))
		if i == len(keys)-1 && e.Kind == unstable.ArrayTable {
			n := ix.arrays[cur]
			ix.arrays[cur] = n + 1
			ix.set(cur, k)
			cur = indexPath(cur, n)
			ix.set(cur, k)
			continue
		}
		if n, ok := ix.arrays[cur]; ok {
			cur = indexPath(cur, n-1) // [a.b] after [[a]] is inside the last a
		}
		ix.set(cur, k)
	}
	return cur
}

// keyValue handles `a.b = value` inside the table at base.
func (ix *indexer) keyValue(base string, kv *unstable.Node) {
	cur := base
	it := kv.Key()
	for it.Next() {
		k := it.Node()
		cur = joinKey(cur, string(k.Data))
		ix.set(cur, k)
	}
	ix.value(cur, kv.Value())
}

// value records the elements of arrays and the keys of inline tables.
func (ix *indexer) value(path string, v *unstable.Node) {
	switch v.Kind {
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			el := it.Node()
			ep := indexPath(path, i)
			ix.set(ep, el)
			ix.value(ep, el)
			i++
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			ix.keyValue(path, it.Node())
		}
	}
}
