package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestTerminalSafe(t *testing.T) {
	cases := []struct {
		in, layout, cell string
	}{
		{"plain text: com.example.hello", "plain text: com.example.hello", "plain text: com.example.hello"},
		{"clear \x1b[2J here", `clear \x1b[2J here`, `clear \x1b[2J here`},
		{"nul\x00byte", `nul\x00byte`, `nul\x00byte`},
		{"two\nlines\tand tab", "two\nlines\tand tab", `two\nlines\tand tab`},
		{"bell\a cr\r del\x7f", `bell\a cr\r del\x7f`, `bell\a cr\r del\x7f`},
		{"csi \u009b1m", `csi \u009b1m`, `csi \u009b1m`},
		{"rtl \u202eevil", `rtl \u202eevil`, `rtl \u202eevil`},
		{"bad \xff utf8", `bad \ufffd utf8`, `bad \ufffd utf8`},
		{"ünïcödé ✓", "ünïcödé ✓", "ünïcödé ✓"},
	}
	for _, c := range cases {
		if got := terminalSafe(c.in, true); got != c.layout {
			t.Errorf("terminalSafe(%q, true) = %q, want %q", c.in, got, c.layout)
		}
		if got := terminalSafe(c.in, false); got != c.cell {
			t.Errorf("terminalSafe(%q, false) = %q, want %q", c.in, got, c.cell)
		}
	}
}

func TestErrorsAreEscapedForTheTerminal(t *testing.T) {
	var stderr strings.Builder
	exitCode(errors.New("unknown reference ${config.\x1b]0;owned\x07}\nsecond line"), &stderr)
	got := stderr.String()
	if strings.ContainsAny(got, "\x1b\x07") {
		t.Fatalf("control characters reached the terminal: %q", got)
	}
	want := "Error: unknown reference ${config.\\x1b]0;owned\\a}\nsecond line\n"
	if got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

// A recipe whose problem echoes an escape sequence (an unknown
// ${config.…} reference) must not reach the terminal raw.
func TestRecipeValidateEscapesControlCharacters(t *testing.T) {
	dir := t.TempDir()
	recipe := writeFile(t, filepath.Join(dir, "esc.recipe.toml"), `format = 1
[metadata]
name    = "com.example.esc"
version = "1.0.0"
kind    = "process"
[lifecycle.run]
command = "./esc"
args    = ["${config.\u001b[2J\u001b[31mred}"]
`)
	r := runCLI(t, "recipe", "validate", recipe)
	if r.code != exitError {
		t.Fatalf("exit code %d, want %d\n%s%s", r.code, exitError, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "\x1b") {
		t.Errorf("an escape sequence reached the terminal:\nstdout %q\nstderr %q", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, `\x1b[2J`) {
		t.Errorf("the escaped reference should be shown:\n%s", r.stdout)
	}
}
