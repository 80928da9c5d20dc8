package recipes_test

import (
	"bytes"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/keystone-edge/keystone/recipes"
)

// validRecipeFiles are the recipes that must parse: the shipped examples and
// the samples in testdata/valid.
func validRecipeFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"examples/*.recipe.toml", "testdata/valid/*.recipe.toml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 6 {
		t.Fatalf("found only %d valid recipes: %v", len(files), files)
	}
	return files
}

// withoutOrigin drops what records where a recipe came from rather than
// what it says.
func withoutOrigin(r *recipes.Recipe) recipes.Recipe {
	c := *r
	c.Source, c.Raw, c.ImportedFiles = "", nil, nil
	return c
}

func TestValidRecipesRoundTrip(t *testing.T) {
	for _, path := range validRecipeFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			first := mustParseRecipe(t, path)
			out, err := first.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			// Parsed from bytes in another folder: the marshalled recipe
			// stands alone, imports already merged.
			second, err := recipes.ParseRecipe(filepath.Join(t.TempDir(), "again.recipe.toml"), out)
			if err != nil {
				t.Fatalf("parse of marshalled recipe:\n%v\n---\n%s", err, out)
			}
			if a, b := withoutOrigin(first), withoutOrigin(second); !reflect.DeepEqual(a, b) {
				t.Fatalf("round trip changed the recipe\nfirst:  %+v\nsecond: %+v\n---\n%s", a, b, out)
			}
			again, err := second.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, again) {
				t.Fatalf("marshal is not stable:\n%s\n---\n%s", out, again)
			}
		})
	}
}

func TestValidManifestsRoundTrip(t *testing.T) {
	for _, path := range []string{"examples/deployment.toml", "testdata/valid/spec.deployment.toml"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			first, err := recipes.ParseManifestFile(path)
			if err != nil {
				t.Fatalf("parse %s:\n%v", path, err)
			}
			out, err := first.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			second, err := recipes.ParseManifest("again.toml", out)
			if err != nil {
				t.Fatalf("parse of marshalled manifest:\n%v\n---\n%s", err, out)
			}
			first.Source, second.Source = "", ""
			if !reflect.DeepEqual(recipes.WithoutPositions(first), recipes.WithoutPositions(second)) {
				t.Fatalf("round trip changed the manifest\nfirst:  %+v\nsecond: %+v\n---\n%s", first, second, out)
			}
		})
	}
}
