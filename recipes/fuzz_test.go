package recipes_test

import (
	"bytes"
	"errors"
	"fmt"
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

// addShapeSeeds adds inputs of the shapes that once cost memory in the
// square of their size (paths made deep by every means TOML has, long
// keys) and of those that cost the most per byte (many small values, near
// the size limit), each after head.
func addShapeSeeds(f *testing.F, head string) {
	f.Helper()
	deep := strings.Repeat("a.", 5000) + "a"
	var keys strings.Builder
	for i := 0; keys.Len() < 30<<10; i++ {
		fmt.Fprintf(&keys, "k%d=1,", i)
	}
	for _, s := range []string{
		deep + " = 1\n",
		"[" + deep + "]\n",
		"[[" + deep + "]]\n",
		"[config.defaults]\ny = " + strings.Repeat("{a=", 2000) + "1" + strings.Repeat("}", 2000) + "\n",
		"[config.defaults]\ny = " + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + "\n",
		"[config.defaults]\ny = " + strings.Repeat("[{a=", 1000) + strings.Repeat("}]", 1000) + "\n",
		"[a.b.c]\nd.e.f = { g = [[{ h = " + strings.Repeat("[", 60) + strings.Repeat("]", 60) + " }]] }\n",
		"[[t]]\n[[t.t]]\n[[t.t.t]]\n" + strings.Repeat("[[t.t.t.t]]\n", 100),
		"[config.defaults." + strings.Repeat("k", 8<<10) + "]\n" + strings.Repeat("v = 1\n[config.defaults.w]\n", 200),
		"\"" + strings.Repeat("\\u001b", 1000) + "\" = 1\n",
		"[config.defaults]\n" + strings.Repeat("k.", 61) + "k = 1\n",
		"[config.defaults]\ny = [" + strings.Repeat("1,", 15<<10) + "]\n",
		"[config.defaults]\ny = [" + strings.Repeat("{a=1},", 5<<10) + "]\n",
		"[config.defaults]\ny = [" + strings.Repeat("[],", 10<<10) + "]\n",
		"[config.defaults]\ny = {" + keys.String() + "}\n",
		"[lifecycle.run]\nargs = [" + strings.Repeat("1,", 15<<10) + "]\n", // an error each
	} {
		f.Add([]byte(head + s))
	}
}

func FuzzParseRecipe(f *testing.F) {
	addFileSeeds(f, "examples/*.recipe.toml", "testdata/valid/*.recipe.toml", "testdata/invalid/recipe/*.toml")
	f.Add([]byte("format = 1\nimports = [\"common.toml\"]\n[metadata]\nname = \"a.b\"\nversion = \"1.0.0\"\nkind = \"process\"\n[lifecycle.run]\ncommand = \"x\"\n"))
	head := "format = 1\nimports = [\"common.toml\"]\n[metadata]\nname = \"a.b\"\nversion = \"1.0.0\"\nkind = \"process\"\n" +
		"[lifecycle.run]\ncommand = \"${config.x}\"\n"
	addShapeSeeds(f, "")
	addShapeSeeds(f, head)
	dir := f.TempDir()
	// An import the fuzzer can reach by name.
	if err := os.WriteFile(filepath.Join(dir, "common.toml"), []byte("[resources]\npids_limit = 8\n[config.defaults]\nx = 1\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	name := filepath.Join(dir, "fuzz.recipe.toml")
	vars := recipes.Vars{DeviceID: "d", WorkDir: "/w", VersionDir: "/v"}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r *recipes.Recipe
		var err, renderErr error
		used := allocated(func() {
			if r, err = recipes.ParseRecipe(name, data); err == nil {
				// Its defaults as the effective config: merged already,
				// they must not be merged again.
				_, renderErr = r.Render(r.Config.Defaults, vars)
			}
		})
		checkMemory(t, used, len(data))
		if err != nil {
			if r != nil {
				t.Fatal("a recipe returned with an error")
			}
			checkErrorList(t, err, data)
			return
		}
		if renderErr != nil {
			var list recipes.ErrorList
			if !errors.As(renderErr, &list) {
				t.Fatalf("render error %T %v is not an ErrorList", renderErr, renderErr)
			}
		}
		// A valid recipe survives marshal → parse unchanged, unless the
		// text it marshals to, defaults written out, outgrows a file.
		out, err := r.Marshal()
		if err != nil {
			t.Fatalf("marshal of a valid recipe: %v", err)
		}
		if len(out) > recipes.MaxFileSize {
			return
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
	})
}

// checkMemory fails a fuzz input whose parse (and render) allocated more
// than memoryBudget allows for its size. allocated measures the total
// allocated, not the peak heap: it bounds the peak from above, so it is the
// stricter check, and it does not vary with when the collector runs.
func checkMemory(t *testing.T, used uint64, size int) {
	t.Helper()
	if budget := memoryBudget(size); used > budget {
		t.Fatalf("%d bytes of input allocated %d bytes, more than %d", size, used, budget)
	}
}

func FuzzParseManifest(f *testing.F) {
	addFileSeeds(f, "examples/deployment.toml", "testdata/valid/*.deployment.toml", "testdata/invalid/manifest/*.toml")
	addShapeSeeds(f, "")
	addShapeSeeds(f, "format = 1\n[[components]]\nname = \"com.example.a\"\nversion = \"1.0.0\"\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		var m *recipes.Manifest
		var err error
		checkMemory(t, allocated(func() { m, err = recipes.ParseManifest("fuzz.recipe.toml", data) }), len(data))
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
		if len(out) > recipes.MaxFileSize {
			return
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
		"$", "$$", "echo $HOME ${config.x}", "\xff${\x00}", "${config.a.b}", "${\x1b[2J}", "${a\u202e\xff}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// An error names the reference with its control characters escaped.
		if _, err := recipes.Interpolate(s, func(string) (string, bool) { return "", false }); err != nil {
			checkPrintable(t, "Interpolate", err.Error())
		}

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
