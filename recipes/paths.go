package recipes

import (
	"strconv"
	"strings"
)

// Field paths name a value inside a document the way a recipe author would
// write it: dotted keys, quoted when they are not bare TOML keys, and [i]
// for array elements: `lifecycle.run.env."A.B"`, `artifacts[1].sha256`.

// joinKey appends a key to a field path.
func joinKey(path, key string) string {
	seg := keySeg(key)
	if path == "" {
		return seg
	}
	return path + "." + seg
}

// indexPath appends an array index to a field path.
func indexPath(path string, i int) string {
	return path + indexSeg(i)
}

// keySeg writes a key as a field path writes it.
func keySeg(key string) string {
	if isBareKey(key) {
		return key
	}
	return strconv.Quote(key)
}

// indexSeg writes an array index as a field path writes it.
func indexSeg(i int) string {
	return "[" + strconv.Itoa(i) + "]"
}

// nextSeg splits the first key or [index] off a field path, as keySeg and
// indexSeg wrote it; rest has no leading '.'.
func nextSeg(path string) (seg, rest string) {
	i := 0
	switch {
	case path == "":
		return "", ""
	case path[0] == '[':
		i = strings.IndexByte(path, ']') + 1
		if i == 0 {
			i = len(path)
		}
	case path[0] == '"':
		for i = 1; i < len(path) && path[i] != '"'; i++ {
			if path[i] == '\\' {
				i++
			}
		}
		i = min(i+1, len(path))
	default:
		for i < len(path) && path[i] != '.' && path[i] != '[' {
			i++
		}
	}
	return path[:i], strings.TrimPrefix(path[i:], ".")
}

// isBareKey reports whether a TOML key can be written without quotes.
func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
