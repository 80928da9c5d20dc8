package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyPath renders a key as TOML writes it: parts joined by dots, quoted
// unless they are bare keys (components."com.example.hello".config).
func keyPath(parts ...string) string {
	quoted := make([]string, len(parts))
	for i, p := range parts {
		if isBareKey(p) {
			quoted[i] = p
		} else {
			quoted[i] = strconv.Quote(p)
		}
	}
	return strings.Join(quoted, ".")
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// position is a 1-based line and column.
type position struct{ line, col int }

// placed is a key written in the document: its parts and where the last
// part is first written.
type placed struct {
	parts []string
	pos   position
}

// positions maps every key path written in a document (as keyPath renders
// it) to where it is first written: a key-value's key, a table header's
// key, and the tables a dotted key or header implies, each at its own
// part. Errors found after decoding, or while decoding a rewritten
// document, find their place here.
type positions map[string]placed

// indexPositions walks the document's syntax tree. It assumes the document
// already parsed, and returns what it indexed so far if it did not.
func indexPositions(data []byte) positions {
	idx := positions{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = idx.key(&p, nil, e.Key())
		case unstable.KeyValue:
			idx.keyValue(&p, table, e)
		}
	}
	return idx
}

// key records the parts of key below prefix and returns the full path.
func (idx positions) key(p *unstable.Parser, prefix []string, key unstable.Iterator) []string {
	full := append([]string(nil), prefix...)
	for key.Next() {
		n := key.Node()
		full = append(full, string(n.Data))
		path := keyPath(full...)
		if _, ok := idx[path]; !ok {
			s := p.Shape(n.Raw)
			idx[path] = placed{parts: append([]string(nil), full...), pos: position{s.Start.Line, s.Start.Column}}
		}
	}
	return full
}

// keyValue records a key-value and, for an inline table, its keys.
func (idx positions) keyValue(p *unstable.Parser, table []string, kv *unstable.Node) {
	full := idx.key(p, table, kv.Key())
	v := kv.Value()
	if v.Kind != unstable.InlineTable {
		return
	}
	for it := v.Children(); it.Next(); {
		if c := it.Node(); c.Kind == unstable.KeyValue {
			idx.keyValue(p, full, c)
		}
	}
}

// find returns the written key that parts names. go-toml reports a key
// inside an inline table without the keys leading to the table, so when
// parts is not a full path, the one written key that ends with it is
// taken. ok is false when there is no such key or more than one.
func (idx positions) find(parts []string) (placed, bool) {
	if k, ok := idx[keyPath(parts...)]; ok {
		return k, true
	}
	suffix := "." + keyPath(parts...)
	var found placed
	n := 0
	for path, k := range idx {
		if strings.HasSuffix(path, suffix) {
			found, n = k, n+1
		}
	}
	return found, n == 1
}

// at returns the error for the key parts names, placed where it is
// written (no position when it cannot be found).
func (idx positions) at(file string, parts []string, msg string) *Error {
	k, ok := idx.find(parts)
	if !ok {
		return &Error{File: file, Path: keyPath(parts...), Message: msg}
	}
	return &Error{File: file, Line: k.pos.line, Col: k.pos.col, Path: keyPath(k.parts...), Message: msg}
}
