package main

import (
	"strconv"
	"strings"
	"unicode"
)

// terminalSafe escapes the control characters in text that keystonectl did
// not write itself (names, messages and values from files and from the
// agent), so that an escape sequence hidden in a recipe cannot clear,
// recolour or retitle the user's terminal. Each such rune is written as Go
// would quote it (\x1b, \x00, \u202e); printable text is left as is, so
// ordinary messages read unchanged. Newlines and tabs are kept when
// keepLayout is set, for multi-line messages; a table cell escapes them too,
// as they would break its row.
func terminalSafe(text string, keepLayout bool) string {
	if !strings.ContainsFunc(text, func(r rune) bool { return unsafeRune(r, keepLayout) }) {
		return text
	}
	var b strings.Builder
	for _, r := range text {
		if !unsafeRune(r, keepLayout) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// unsafeRune reports a rune a terminal may act on rather than print: C0 and
// C1 controls, DEL, invalid UTF-8, and the format characters (such as the
// bidirectional overrides) that make text display other than it reads.
func unsafeRune(r rune, keepLayout bool) bool {
	if keepLayout && (r == '\n' || r == '\t') {
		return false
	}
	return r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
