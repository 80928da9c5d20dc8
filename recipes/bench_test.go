package recipes_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
)

// benchParse parses one file repeatedly and reports the time per parse.
func benchParse(b *testing.B, path string, parse func(name string, data []byte) error) {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		if err := parse(path, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "us/parse")
	b.ReportMetric(float64(len(data)), "bytes")
}

// BenchmarkParseRecipe parses the full process recipe of testdata/valid
// (every field, one import) and validates it.
func BenchmarkParseRecipe(b *testing.B) {
	benchParse(b, filepath.Join("testdata", "valid", "spec-process.recipe.toml"), func(name string, data []byte) error {
		_, err := recipes.ParseRecipe(name, data)
		return err
	})
}

// BenchmarkParseRecipeInvalid parses a recipe with seven errors, all
// reported with positions.
func BenchmarkParseRecipeInvalid(b *testing.B) {
	benchParse(b, filepath.Join("testdata", "invalid", "recipe", "many-errors.recipe.toml"), func(name string, data []byte) error {
		if _, err := recipes.ParseRecipe(name, data); err == nil {
			b.Fatal("parsed without error")
		}
		return nil
	})
}

// BenchmarkRender renders the full process recipe with device and
// deployment config.
func BenchmarkRender(b *testing.B) {
	r, err := recipes.ParseRecipeFile(filepath.Join("testdata", "valid", "spec-process.recipe.toml"))
	if err != nil {
		b.Fatal(err)
	}
	device := map[string]any{"interval_seconds": int64(10)}
	deployment := map[string]any{"log": map[string]any{"level": "debug"}}
	start := time.Now()
	for b.Loop() {
		if _, err := r.Render(recipes.EffectiveConfig(r.Config.Defaults, device, deployment), recipes.Vars{DeviceID: "pos-12"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "us/render")
}
