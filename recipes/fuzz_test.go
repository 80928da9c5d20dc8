package recipes_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
)

// addFileSeeds adds every file matching the patterns to the fuzz corpus.
func addFileSeeds(f *testing.F, patterns ...string) {
	f.Helper()
	for _, pattern := range patterns {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// checkErrorList asserts what every parse failure must look like: an
// ErrorList of located, explained errors about the file parsed (or a file
// it imports).
func checkErrorList(t *testing.T, err error, data []byte) {
	t.Helper()
	var list recipes.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %T %q is not a non-empty ErrorList", err, err)
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	for _, fe := range list {
		if fe.Message == "" || fe.File == "" {
			t.Fatalf("error without message or file: %#v", fe)
		}
		if fe.Path == "" && fe.Line == 0 {
			t.Fatalf("error with neither path nor line: %v", fe)
		}
		if fe.Line < 0 || fe.Col < 0 || filepath.Base(fe.File) == "fuzz.recipe.toml" && fe.Line > lines {
			t.Fatalf("position out of the file (%d lines): %v", lines, fe)
		}
	}
}

func FuzzParseRecipe(f *testing.F) {
	addFileSeeds(f, "examples/*.recipe.toml", "testdata/valid/*.recipe.toml", "testdata/invalid/recipe/*.toml")
	f.Add([]byte("format = 1\nimports = [\"common.toml\"]\n[metadata]\nname = \"a.b\"\nversion = \"1.0.0\"\nkind = \"process\"\n[lifecycle.run]\ncommand = \"x\"\n"))
	dir := f.TempDir()
	// An import the fuzzer can reach by name.
	if err := os.WriteFile(filepath.Join(dir, "common.toml"), []byte("[resources]\npids_limit = 8\n[config.defaults]\nx = 1\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	name := filepath.Join(dir, "fuzz.recipe.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := recipes.ParseRecipe(name, data)
		if err != nil {
			if r != nil {
				t.Fatal("a recipe returned with an error")
			}
			checkErrorList(t, err, data)
			return
		}
		// A valid recipe survives marshal → parse unchanged.
		out, err := r.Marshal()
		if err != nil {
			t.Fatalf("marshal of a valid recipe: %v", err)
		}
		again, err := recipes.ParseRecipe(name, out)
		if err != nil {
			t.Fatalf("marshalled recipe does not parse: %v\n%s", err, out)
		}
		out2, err := again.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("marshal → parse → marshal changed the text:\n%s\n---\n%s", out, out2)
		}
		if _, err := r.Render(nil, recipes.Vars{DeviceID: "d", WorkDir: "/w", VersionDir: "/v"}); err != nil {
			var list recipes.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("render error %T %v is not an ErrorList", err, err)
			}
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	addFileSeeds(f, "examples/deployment.toml", "testdata/valid/*.deployment.toml", "testdata/invalid/manifest/*.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := recipes.ParseManifest("fuzz.recipe.toml", data)
		if err != nil {
			if m != nil {
				t.Fatal("a manifest returned with an error")
			}
			checkErrorList(t, err, data)
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("marshal of a valid manifest: %v", err)
		}
		again, err := recipes.ParseManifest("fuzz.recipe.toml", out)
		if err != nil {
			t.Fatalf("marshalled manifest does not parse: %v\n%s", err, out)
		}
		out2, err := again.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("marshal → parse → marshal changed the text:\n%s\n---\n%s", out, out2)
		}
	})
}

func FuzzInterpolate(f *testing.F) {
	for _, s := range []string{"", "plain", "${a}", "$${a}", "$$${a}", "${", "${}", "a${b", "${a}${b}", "${a${b}}",
		"$", "$$", "echo $HOME ${config.x}", "\xff${\x00}", "${config.a.b}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Escape is undone exactly, and nothing escaped is looked up.
		got, err := recipes.Interpolate(recipes.Escape(s), func(ref string) (string, bool) {
			t.Fatalf("escaped text %q looked up %q", s, ref)
			return "", false
		})
		if err != nil || got != s {
			t.Fatalf("Interpolate(Escape(%q)) = %q, %v", s, got, err)
		}

		// Every reference handed to lookup is non-empty and has no "}";
		// replacement text is never scanned again.
		var refs []string
		out, err := recipes.Interpolate(s, func(ref string) (string, bool) {
			if ref == "" || strings.Contains(ref, "}") {
				t.Fatalf("lookup got reference %q from %q", ref, s)
			}
			refs = append(refs, ref)
			return "${" + ref + "}", true
		})
		if err != nil {
			if !strings.Contains(err.Error(), "offset") {
				t.Fatalf("error %q does not say where", err)
			}
			return
		}
		if !strings.Contains(s, "$") && out != s {
			t.Fatalf("text without $ changed: %q → %q", s, out)
		}
		// With a lookup that gives each reference back as written, the
		// output is s with only its escapes resolved.
		want := unescapeModel(s)
		if out != want {
			t.Fatalf("Interpolate(%q) with identity lookup = %q, want %q (refs %q)", s, out, want, refs)
		}
	})
}

// unescapeModel is an independent statement of what Interpolate does with a
// lookup that returns each reference unchanged: left to right, "$${" turns
// into "${" and everything else stays.
func unescapeModel(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "$${")
		j := strings.Index(s, "${")
		switch {
		case i < 0:
			b.WriteString(s)
			return b.String()
		case j < i:
			// A "${…}" reference comes first: copy through its closing brace.
			end := strings.IndexByte(s[j+2:], '}')
			b.WriteString(s[:j+2+end+1])
			s = s[j+2+end+1:]
		default:
			b.WriteString(s[:i])
			b.WriteString("${")
			s = s[i+3:]
		}
	}
}
