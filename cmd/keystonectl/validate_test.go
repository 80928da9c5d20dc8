package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const helloManifest = `format = 1

[deployment]
id = "rollout-42"
failure_policy = "rollback"

[[components]]
name    = "com.example.hello"
version = "1.2.0"
recipe  = "hello.recipe.toml"
`

// brokenRecipe has two problems: a bad restart policy (line 8) and an
// unknown field (line 9).
const brokenRecipe = `format = 1
[metadata]
name    = "com.example.broken"
version = "1.0.0"
kind    = "process"
[lifecycle.run]
command = "./broken"
restart_policy = "sometimes"
colour = "blue"
`

func TestRecipeValidateValidFiles(t *testing.T) {
	dir := t.TempDir()
	recipe := writeFile(t, filepath.Join(dir, "hello.recipe.toml"), helloRecipe)
	manifest := writeFile(t, filepath.Join(dir, "deployment.toml"), helloManifest)
	// Named neither way: a manifest by its [deployment] table.
	rollout := writeFile(t, filepath.Join(dir, "rollout.toml"), helloManifest)

	r := runCLI(t, "recipe", "validate", recipe, manifest, rollout)
	r.expect(t, exitOK, []string{"FILE", "KIND", "SUMMARY",
		"com.example.hello 1.2.0 (process)", "id rollout-42, 1 component(s)"}, none)
	if got := strings.Count(r.stdout, "  manifest  "); got != 2 {
		t.Errorf("want 2 manifests in the table, got %d:\n%s", got, r.stdout)
	}

	r = runCLI(t, "-o", "json", "recipe", "validate", recipe, manifest)
	r.expect(t, exitOK, []string{"[]\n"}, none)
}

func TestRecipeValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "hello.recipe.toml"), helloRecipe)
	broken := writeFile(t, filepath.Join(dir, "broken.recipe.toml"), brokenRecipe)
	missing := filepath.Join(dir, "missing.recipe.toml")
	badManifest := writeFile(t, filepath.Join(dir, "rollout.toml"),
		strings.Replace(helloManifest, `"rollback"`, `"maybe"`, 1))

	r := runCLI(t, "recipe", "validate", good, broken, missing, badManifest)
	r.expect(t, exitError, nil, []string{"Error: ", "problem(s) in 3 of 4 file(s)"})
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	wantLines := []*regexp.Regexp{
		regexp.MustCompile(`^` + regexp.QuoteMeta(broken) + `:8:\d+: lifecycle\.run\.restart_policy: must be one of never, on-failure, always`),
		regexp.MustCompile(`^` + regexp.QuoteMeta(broken) + `:9:\d+: lifecycle\.run\.colour: `),
		regexp.MustCompile(`^` + regexp.QuoteMeta(missing) + `: .*no such file or directory$`),
		regexp.MustCompile(`^` + regexp.QuoteMeta(badManifest) + `:5:\d+: deployment\.failure_policy: `),
	}
	if len(lines) != len(wantLines) {
		t.Fatalf("want %d lines, one per problem, got %d:\n%s", len(wantLines), len(lines), r.stdout)
	}
	for i, re := range wantLines {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want match for %s", i+1, lines[i], re)
		}
	}
	if strings.Contains(r.stdout, good) {
		t.Errorf("the valid file should not be reported:\n%s", r.stdout)
	}

	r = runCLI(t, "-o", "json", "recipe", "validate", good, broken, missing, badManifest)
	r.expect(t, exitError, nil, []string{"Error: "})
	var got []validateError
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if len(got) != len(wantLines) {
		t.Fatalf("JSON has %d problems, want %d: %+v", len(got), len(wantLines), got)
	}
	first := got[0]
	if first.File != broken || first.Line != 8 || first.Col < 1 || first.Path != "lifecycle.run.restart_policy" ||
		!strings.HasPrefix(first.Message, "must be one of never, on-failure, always") {
		t.Errorf("first problem = %+v", first)
	}
	if m := got[2]; m.File != missing || m.Line != 0 || m.Col != 0 || m.Path != "" || !strings.Contains(m.Message, "no such file") {
		t.Errorf("missing file problem = %+v", m)
	}
	if m := got[3]; m.File != badManifest || m.Path != "deployment.failure_policy" {
		t.Errorf("manifest problem = %+v (a file with [deployment] must be checked as a manifest)", m)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"file", "line", "col", "path", "message"} {
		if _, ok := raw[0][key]; !ok {
			t.Errorf("JSON problem lacks %q: %v", key, raw[0])
		}
	}
}

func TestRecipeValidateUsage(t *testing.T) {
	runCLI(t, "recipe", "validate").expect(t, exitUsage, none, []string{"takes at least 1 argument(s): FILE...", "try 'keystonectl recipe validate --help'"})
}

// A manifest is checked with what it brings along, as the agent would:
// the problems of its local recipes, a recipe that is not the listed
// version, and config overrides with unknown keys or the wrong type, each
// with its file and line.
func TestRecipeValidateChecksAManifestsRecipesAndOverrides(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "broken.recipe.toml"), brokenRecipe)
	writeFile(t, filepath.Join(dir, "sensor.recipe.toml"), `format = 1
[metadata]
name    = "com.example.sensor"
version = "2.0.0"
kind    = "process"
[config.defaults]
interval_seconds = 30
scale = 1.5
[config.defaults.db]
user = "app"
[lifecycle.run]
command = "./sensor"
args = ["${config.interval_seconds}"]
`)
	writeFile(t, filepath.Join(dir, "hello.recipe.toml"), helloRecipe)
	manifest := writeFile(t, filepath.Join(dir, "deployment.toml"), `format = 1
[[components]]
name    = "com.example.broken"
version = "1.0.0"
recipe  = "broken.recipe.toml"

[[components]]
name    = "com.example.sensor"
version = "2.0.0"
recipe  = "sensor.recipe.toml"
[components.config]
interval_seconds = "fast"
scale = 2
colour = "blue"
db = "app:secret"

[[components]]
name    = "com.example.hello"
version = "1.3.0"
recipe  = "hello.recipe.toml"
`)
	r := runCLI(t, "recipe", "validate", manifest)
	r.expect(t, exitError, nil, []string{"Error: "})
	broken := filepath.Join(dir, "broken.recipe.toml")
	want := []string{
		broken + ":8:1: lifecycle.run.restart_policy: ",
		broken + ":9:1: lifecycle.run.colour: ",
		manifest + `:12:1: components[1].config.interval_seconds: is a string ("fast"), but its default is an integer (30)`,
		manifest + ":14:1: components[1].config.colour: not in the config.defaults of com.example.sensor",
		manifest + `:15:1: components[1].config.db: is a string ("app:secret"), but its default is a table`,
		manifest + ":20:1: components[2].recipe: hello.recipe.toml is com.example.hello 1.2.0, but the manifest lists com.example.hello 1.3.0",
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("want %d problems, got:\n%s", len(want), r.stdout)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], w)
		}
	}
	if strings.Contains(r.stdout, "scale") {
		t.Errorf("an integer for a float default is fine:\n%s", r.stdout)
	}
}
