package recipes_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
)

var update = flag.Bool("update", false, "rewrite the .err golden files of testdata/invalid")

// invalidCase is one malformed file and the exact errors expected from it,
// kept beside it as <case>.err.
type invalidCase struct {
	name   string // file or folder name, for the subtest
	file   string // what to parse
	golden string // the .err file
}

// invalidCases lists testdata/invalid/<kind>: plain files, and folders
// (import cases) whose main.recipe.toml is parsed.
func invalidCases(t *testing.T, kind string) []invalidCase {
	t.Helper()
	dir := filepath.Join("testdata", "invalid", kind)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var cases []invalidCase
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
			cases = append(cases, invalidCase{name, filepath.Join(dir, name, "main.recipe.toml"), filepath.Join(dir, name+".err")})
		case strings.HasSuffix(name, ".toml"):
			base := strings.TrimSuffix(strings.TrimSuffix(name, ".toml"), ".recipe")
			cases = append(cases, invalidCase{base, filepath.Join(dir, name), filepath.Join(dir, base+".err")})
		}
	}
	return cases
}

func TestInvalidCorpus(t *testing.T) {
	recipeCases := invalidCases(t, "recipe")
	manifestCases := invalidCases(t, "manifest")
	if n := len(recipeCases) + len(manifestCases); n < 40 {
		t.Fatalf("the invalid corpus has %d cases, want at least 40", n)
	}
	run := func(kind string, cases []invalidCase, parse func(string) error) {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				err := parse(tc.file)
				if err == nil {
					t.Fatalf("%s parsed without error", tc.file)
				}
				var list recipes.ErrorList
				if !errors.As(err, &list) {
					t.Fatalf("error is %T, want recipes.ErrorList: %v", err, err)
				}
				for _, fe := range list {
					if fe.File == "" || fe.Message == "" {
						t.Errorf("error without file or message: %#v", fe)
					}
					if fe.Path == "" && fe.Line == 0 {
						t.Errorf("error with neither a field path nor a line: %v", fe)
					}
				}
				got := err.Error() + "\n"
				if *update {
					if err := os.WriteFile(tc.golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, rerr := os.ReadFile(tc.golden)
				if rerr != nil {
					t.Fatalf("read golden: %v", rerr)
				}
				if got != string(want) {
					t.Errorf("errors of %s differ from %s\n--- got\n%s--- want\n%s", tc.file, tc.golden, got, want)
				}
			})
		}
	}
	run("recipe", recipeCases, func(path string) error {
		_, err := recipes.ParseRecipeFile(path)
		return err
	})
	run("manifest", manifestCases, func(path string) error {
		_, err := recipes.ParseManifestFile(path)
		return err
	})
}
