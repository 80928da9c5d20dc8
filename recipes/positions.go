package recipes

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// position is a line and column, both from 1; zero when unknown.
type position struct{ line, col int32 }

// posIndex is where each field path of a document is written. Paths are
// nodes of a tree and share their prefixes, so the index holds each key
// once, as written, and grows with the file rather than with the sum of
// its paths' lengths (which a deep dotted key, or many keys under a long
// [table] header, make quadratic). A file may hold many short keys and
// array elements, so a node is kept small: the keys of all nodes are in
// one map, and a plain array element has no node at all.
type posIndex struct {
	root posNode
	keys map[posKey]*posNode
}

// posKey names the child key seg of a node.
type posKey struct {
	parent *posNode
	seg    string
}

// posNode is one field path: where it is first written, and its elements
// when it is an array.
type posNode struct {
	at     position // zero when the path is only implied by a longer one
	parent *posNode
	// seg is the path's last key as a field path writes it; "" for an
	// array element, which is (*parent.elems)[index].
	seg   string
	elems *[]element
	index int32
	depth int32 // the number of keys and indexes in the path
	// length is the length of the path's text.
	length int32
	// arrayTable is set once a [[path]] header is seen.
	arrayTable bool
}

// element is one array element: its node when it is a table or an array,
// which then holds its position; a plain value needs no node of its own.
type element struct {
	at position
	n  *posNode
}

// key returns the node of n's path one key longer, making it if needed.
func (x *posIndex) key(n *posNode, seg string) *posNode {
	if c, ok := x.keys[posKey{n, seg}]; ok {
		return c
	}
	c := &posNode{parent: n, seg: seg, depth: n.depth + 1, length: n.length + int32(len(seg))}
	if n.parent != nil {
		c.length++ // the '.' before the key
	}
	x.keys[posKey{n, seg}] = c
	return c
}

// elements returns the elements of n, an array.
func (n *posNode) elements() []element {
	if n.elems == nil {
		return nil
	}
	return *n.elems
}

// addElem adds a plain element to n, an array.
func (n *posNode) addElem(at position) {
	if n.elems == nil {
		n.elems = new([]element)
	}
	*n.elems = append(*n.elems, element{at: at})
}

// elem returns the node of element i of n, which is either one already
// added or the next, making it if needed.
func (n *posNode) elem(i int, at position) *posNode {
	if i == len(n.elements()) {
		n.addElem(at)
	}
	e := &(*n.elems)[i]
	if e.n == nil {
		e.n = &posNode{parent: n, at: e.at, index: int32(i), depth: n.depth + 1,
			length: n.length + int32(len(indexSeg(i)))}
	}
	return e.n
}

// path writes the node's field path; it is built only when asked for.
func (n *posNode) path() string {
	b := make([]byte, n.length)
	for c := n; c.parent != nil; c = c.parent {
		seg := c.seg
		if seg == "" {
			seg = indexSeg(int(c.index))
		}
		start := int(c.length) - len(seg)
		copy(b[start:], seg)
		if start > 0 && seg[0] != '[' {
			b[start-1] = '.'
		}
	}
	return string(b)
}

// find returns the position of path or, when the file does not write it,
// of its nearest ancestor that it does write, with the number of keys and
// indexes of the path found.
func (x *posIndex) find(path string) (at position, depth int, ok bool) {
	n := &x.root
	d := 0
	for rest := path; rest != "" && n != nil; d++ {
		var seg string
		var here position
		seg, rest = nextSeg(rest)
		if here, n = x.child(n, seg); here.line > 0 {
			at, depth, ok = here, d+1, true
		}
	}
	return at, depth, ok
}

// child follows one key or [index] of a path from n: where it is written,
// and its node (nil for a plain array element, or when it is not there).
func (x *posIndex) child(n *posNode, seg string) (position, *posNode) {
	if seg == "" || seg[0] != '[' {
		if c := x.keys[posKey{n, seg}]; c != nil {
			return c.at, c
		}
		return position{}, nil
	}
	elems := n.elements()
	i, err := strconv.Atoi(seg[1 : len(seg)-1])
	if err != nil || i < 0 || i >= len(elems) {
		return position{}, nil
	}
	if e := elems[i]; e.n != nil {
		return e.n.at, e.n
	}
	return elems[i].at, nil
}

// indexer walks the TOML syntax tree and records where each key, table
// header and array element starts. It follows TOML's rules for [table]
// and [[array]] headers so that paths match the decoded tree. It gives up
// quietly at a syntax error, which the decoder reports, and stops at the
// first path deeper than maxKeyDepth.
type indexer struct {
	p   unstable.Parser
	pos *posIndex
	// at, when set, asks for the path written at that position; the
	// longest one found there goes to found.
	at       *position
	found    string
	foundLen int32
	// longest is the longest path whose position is recorded.
	longest *posNode
	// tooDeep is the first path found deeper than maxKeyDepth, and deepAt
	// where it is written.
	tooDeep *posNode
	deepAt  position
	// lineStarts holds the offset of each line's first byte.
	lineStarts []int
}

func newIndexer(at *position) *indexer {
	return &indexer{pos: &posIndex{keys: map[posKey]*posNode{}}, at: at}
}

// walk indexes a document; it returns the node of the table the document
// ends in, and false when it stopped at a syntax error or a path too deep.
func (ix *indexer) walk(data []byte) (*posNode, bool) {
	ix.lineStarts = append(ix.lineStarts[:0], 0)
	for i, c := range data {
		if c == '\n' {
			ix.lineStarts = append(ix.lineStarts, i+1)
		}
	}
	ix.p.Reset(data)
	table := &ix.pos.root
	for ix.p.NextExpression() {
		e := ix.p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = ix.header(e)
		case unstable.KeyValue:
			ix.keyValue(table, e)
		}
		if ix.tooDeep != nil {
			return nil, false
		}
	}
	return table, ix.p.Error() == nil
}

// tooDeepError reports the path that went past maxKeyDepth.
func (ix *indexer) tooDeepError(file string) *FieldError {
	return &FieldError{
		File: file, Line: int(ix.deepAt.line), Col: int(ix.deepAt.col), Path: ix.tooDeep.path(),
		Message: fmt.Sprintf("nested more than %d levels deep (each part of a dotted key or [table] header, "+
			"each key of an inline table and each array element is a level)", maxKeyDepth),
	}
}

// position returns where a node starts, as a line and a byte column, both
// from 1, as go-toml counts them; zero when it has no place in the input.
func (ix *indexer) position(node *unstable.Node) position {
	if node.Raw.Length == 0 {
		return position{}
	}
	offset := int(node.Raw.Offset)
	line := sort.Search(len(ix.lineStarts), func(i int) bool { return ix.lineStarts[i] > offset })
	return position{line: int32(line), col: int32(offset - ix.lineStarts[line-1] + 1)}
}

// deep reports whether c, just reached from the syntax node, is past
// maxKeyDepth, and then records it to stop the walk.
func (ix *indexer) deep(c *posNode, node *unstable.Node) bool {
	if c.depth <= maxKeyDepth {
		return false
	}
	ix.tooDeep = c
	ix.deepAt = ix.position(node)
	for a := c; a != nil && ix.deepAt.line == 0; a = a.parent {
		ix.deepAt = a.at // arrays have no place of their own: name the nearest one
	}
	return true
}

// set records where the path of n is first written.
func (ix *indexer) set(n *posNode, node *unstable.Node) {
	at := ix.position(node)
	if at.line == 0 {
		return
	}
	ix.note(at, n, -1)
	if n.at.line == 0 {
		n.at = at
	}
	if ix.longest == nil || n.length > ix.longest.length {
		ix.longest = n
	}
}

// note keeps the longest path written at ix.at: n's, or that of n's plain
// element elem. It builds the path only when the position matches.
func (ix *indexer) note(at position, n *posNode, elem int) {
	if ix.at == nil || *ix.at != at {
		return
	}
	path := n.path()
	if elem >= 0 {
		path += indexSeg(elem)
	}
	if int32(len(path)) > ix.foundLen {
		ix.found, ix.foundLen = path, int32(len(path))
	}
}

// header handles [a.b] and [[a.b]] and returns the table's node.
func (ix *indexer) header(e *unstable.Node) *posNode {
	cur := &ix.pos.root
	it := e.Key()
	for it.Next() {
		k := it.Node()
		if cur = ix.pos.key(cur, keySeg(string(k.Data))); ix.deep(cur, k) {
			return nil
		}
		if it.IsLast() && e.Kind == unstable.ArrayTable {
			ix.set(cur, k)
			cur.arrayTable = true
			cur = cur.elem(len(cur.elements()), position{})
		} else if cur.arrayTable {
			cur = cur.elem(len(cur.elements())-1, position{}) // [a.b] after [[a]] is inside the last a
		}
		if ix.deep(cur, k) {
			return nil
		}
		ix.set(cur, k)
	}
	return cur
}

// keyValue handles `a.b = value` inside the table at base.
func (ix *indexer) keyValue(base *posNode, kv *unstable.Node) bool {
	cur := base
	it := kv.Key()
	for it.Next() {
		k := it.Node()
		if cur = ix.pos.key(cur, keySeg(string(k.Data))); ix.deep(cur, k) {
			return false
		}
		ix.set(cur, k)
	}
	return ix.value(cur, kv.Value())
}

// value records the elements of arrays and the keys of inline tables.
func (ix *indexer) value(n *posNode, v *unstable.Node) bool {
	switch v.Kind {
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			if !ix.element(n, i, it.Node()) {
				return false
			}
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if !ix.keyValue(n, it.Node()) {
				return false
			}
		}
	}
	return true
}

// element records element i of the array at n. A plain value, or an empty
// table or array, is only a position; what holds more gets a node.
func (ix *indexer) element(n *posNode, i int, el *unstable.Node) bool {
	at := ix.position(el)
	if kids := el.Children(); n.depth < maxKeyDepth && !kids.Next() {
		n.addElem(at)
		ix.note(at, n, i)
		return true
	}
	c := n.elem(i, at)
	if ix.deep(c, el) {
		return false
	}
	ix.set(c, el)
	return ix.value(c, el)
}
