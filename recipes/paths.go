package recipes

import (
	"strconv"
)

// Field paths name a value inside a document the way a recipe author would
// write it: dotted keys, quoted when they are not bare TOML keys, and [i]
// for array elements: `lifecycle.run.env."A.B"`, `artifacts[1].sha256`.

// joinKey appends a key to a field path.
func joinKey(path, key string) string {
	seg := key
	if !isBareKey(key) {
		seg = strconv.Quote(key)
	}
	if path == "" {
		return seg
	}
	return path + "." + seg
}

// indexPath appends an array index to a field path.
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
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

// parentPath drops the last key or index of a path; false for a path of a
// single key (or the empty path).
func parentPath(path string) (string, bool) {
	last := -1 // start of the last segment, counting its '.' separator
	for i := 0; i < len(path); {
		switch path[i] {
		case '.':
			last = i
			i++
		case '[':
			last = i
			for i < len(path) && path[i] != ']' {
				i++
			}
			i++
		case '"':
			i++
			for i < len(path) && path[i] != '"' {
				if path[i] == '\\' {
					i++
				}
				i++
			}
			i++
		default:
			i++
		}
	}
	if last <= 0 {
		return "", false
	}
	return path[:last], true
}
