package recipes_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
)

func mapLookup(m map[string]string) func(string) (string, bool) {
	return func(ref string) (string, bool) {
		v, ok := m[ref]
		return v, ok
	}
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{
		"config.port": "8080",
		"device.id":   "pos-12",
		"config.tmpl": "${device.id}", // replacement text is not scanned again
		"config.e":    "",
	}
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "", want: ""},
		{in: "plain text", want: "plain text"},
		{in: "${config.port}", want: "8080"},
		{in: "--port=${config.port}", want: "--port=8080"},
		{in: "${device.id}:${config.port}/${device.id}", want: "pos-12:8080/pos-12"},
		{in: "[${config.e}]", want: "[]"},
		{in: "${config.tmpl}", want: "${device.id}"},
		{in: "$${config.port}", want: "${config.port}"},
		// Scanned left to right: the first "$" is plain, then "$${" is an escape.
		{in: "$$${config.port}", want: "$${config.port}"},
		{in: "$$$${config.port}", want: "$$${config.port}"},
		{in: "$$${config.port", want: "$${config.port"},
		{in: "cost: $5, $$, $ {x}, $", want: "cost: $5, $$, $ {x}, $"},
		{in: "echo $HOME $((1+2)) $(date)", want: "echo $HOME $((1+2)) $(date)"},
		{in: "a ${config.port", err: `unterminated "${" at offset 2`},
		{in: "x${}", err: `empty reference "${}" at offset 1`},
		{in: "${config.nope} and more", err: `unknown reference "${config.nope}" at offset 0`},
		{in: "${config.port}${a${b}}", err: `unknown reference "${a${b}" at offset 14`},
		{in: "héllo ${device.id} ✓", want: "héllo pos-12 ✓"},
	} {
		got, err := recipes.Interpolate(tc.in, mapLookup(vars))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Interpolate(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("Interpolate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	_, err := recipes.Interpolate("${x}", mapLookup(nil))
	if !errors.Is(err, recipes.ErrUnknownReference) {
		t.Errorf("unknown reference error %v does not wrap ErrUnknownReference", err)
	}
}

func TestInterpolateCallsLookupOncePerReference(t *testing.T) {
	var seen []string
	_, err := recipes.Interpolate("${a} ${b} $${c} ${a}", func(ref string) (string, bool) {
		seen = append(seen, ref)
		return "v", true
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, ","); got != "a,b,a" {
		t.Errorf("lookups = %s, want a,b,a (escaped $${c} is not looked up)", got)
	}
}

func TestEscape(t *testing.T) {
	for _, s := range []string{"", "plain", "${x}", "$${x}", "$", "$$", "a${b}c${", "${${}}", "$$$${"} {
		got, err := recipes.Interpolate(recipes.Escape(s), mapLookup(nil))
		if err != nil || got != s {
			t.Errorf("Interpolate(Escape(%q)) = %q, %v; want it back", s, got, err)
		}
	}
}
