package recipes_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystone-edge/keystone/recipes"
	"github.com/pelletier/go-toml/v2"
)

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	line  int               // line of the opening fence
	lang  string            // first word of the info string
	flags map[string]string // the other words: "recipe", "manifest", "invalid", "file=NAME", "name=NAME"
	body  string
}

func readDocBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []docBlock
	var cur *docBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			words := strings.Fields(strings.TrimPrefix(line, "```"))
			cur = &docBlock{line: n, flags: map[string]string{}}
			if len(words) > 0 {
				cur.lang = words[0]
				for _, w := range words[1:] {
					k, v, _ := strings.Cut(w, "=")
					cur.flags[k] = v
				}
			}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", path, cur.line)
	}
	return blocks
}

// TestDocsRecipesExamples checks every TOML block of docs/recipes.md: a
// "recipe" or "manifest" block must parse; an "invalid" one must fail with
// exactly the errors of the "text" block after it; a "file=NAME" block is
// written beside the recipes for them to import; any other TOML block must
// at least be valid TOML.
func TestDocsRecipesExamples(t *testing.T) {
	doc := filepath.Join("..", "docs", "recipes.md")
	blocks := readDocBlocks(t, doc)
	dir := t.TempDir()
	for _, b := range blocks {
		if name, ok := b.flags["file"]; ok {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(b.body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var checked, invalid int
	for i, b := range blocks {
		if b.lang != "toml" {
			continue
		}
		where := fmt.Sprintf("%s:%d", doc, b.line)
		_, isManifest := b.flags["manifest"]
		name := b.flags["name"]
		if name == "" {
			name = "example.recipe.toml"
		}
		parse := func() error {
			if isManifest {
				_, err := recipes.ParseManifest(filepath.Join(dir, name), []byte(b.body))
				return err
			}
			_, err := recipes.ParseRecipe(filepath.Join(dir, name), []byte(b.body))
			return err
		}
		_, isRecipe := b.flags["recipe"]
		_, isInvalid := b.flags["invalid"]
		_, isFile := b.flags["file"]
		switch {
		case isInvalid:
			invalid++
			err := parse()
			if err == nil {
				t.Errorf("%s: the invalid example parses", where)
				continue
			}
			if i+1 >= len(blocks) || blocks[i+1].lang != "text" {
				t.Errorf("%s: an invalid example must be followed by a text block with its errors", where)
				continue
			}
			got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "") + "\n"
			if want := blocks[i+1].body; got != want {
				t.Errorf("%s: errors differ from the text block after it\n--- got\n%s--- documented\n%s", where, got, want)
			}
		case isRecipe || isManifest:
			if err := parse(); err != nil {
				t.Errorf("%s: example does not parse:\n%v", where, err)
			}
		case isFile:
		default:
			var v map[string]any
			if err := toml.Unmarshal([]byte(b.body), &v); err != nil {
				t.Errorf("%s: not valid TOML: %v", where, err)
			}
		}
		checked++
	}
	if checked < 6 || invalid < 2 {
		t.Errorf("only %d TOML examples (%d invalid) found in %s", checked, invalid, doc)
	}
}

// TestDocsRecipesDefaults keeps the documented defaults equal to the ones
// the parser applies.
func TestDocsRecipesDefaults(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "recipes.md"))
	if err != nil {
		t.Fatal(err)
	}
	// dur fills a row with the documented duration after checking that it
	// is the default the parser applies.
	dur := func(format, documented string, def time.Duration) string {
		if d, err := time.ParseDuration(documented); err != nil || d != def {
			t.Errorf("documented %q, the parser applies %v", documented, def)
		}
		return fmt.Sprintf(format, documented)
	}
	rows := []string{
		fmt.Sprintf("| `restart_policy` | string | `%q` |", recipes.DefaultRestartPolicy),
		dur("| `restart_backoff.initial` | duration | `%s` |", "1s", recipes.DefaultRestartInitial),
		dur("| `restart_backoff.max` | duration | `%s` |", "5m", recipes.DefaultRestartMax),
		fmt.Sprintf("| `max_restarts.count` | int | `%d` |", recipes.DefaultMaxRestarts),
		dur("| `max_restarts.window` | duration | `%s` |", "10m", recipes.DefaultMaxRestartsWindow),
		fmt.Sprintf("| `stop_signal` | string | `%q` |", recipes.DefaultStopSignal),
		dur("| `stop_timeout` | duration | `%s` |", "10s", recipes.DefaultStopTimeout),
		fmt.Sprintf("| `working_dir` | string | `%q` |", recipes.DefaultWorkingDir),
		dur("| `timeout` | duration | install `%s`,", "2m", recipes.DefaultInstallTimeout),
		dur("shutdown `%s` |", "10s", recipes.DefaultShutdownTimeout),
		dur("| `interval` | duration | `%s` | more than 0s |\n| `timeout` | duration | `3s`", "10s", recipes.DefaultHealthInterval),
		dur("| `timeout` | duration | `%s` | more than 0s, not more than `interval` |\n| `start_period`", "3s", recipes.DefaultHealthTimeout),
		fmt.Sprintf("| `failure_threshold` | int | `%d` |", recipes.DefaultHealthThreshold),
		fmt.Sprintf("| `runtime` | string | `%q` |", recipes.DefaultPluginRuntime),
		dur("| `interval` | duration | `%s` | more than 0s |\n| `jitter`", "30s", recipes.DefaultPluginInterval),
		dur("| `timeout` | duration | `%s` | more than 0s, not more than `interval` |\n| `state`", "5s", recipes.DefaultPluginTimeout),
		fmt.Sprintf("| `type` | string | `%q` |", recipes.DefaultDependencyType),
		fmt.Sprintf("| `deployment.failure_policy` | string | `%q` |", recipes.DefaultFailurePolicy),
		dur("| `deployment.health_timeout` | duration | `%s` |", "60s", recipes.DefaultDeploymentHealthTimeout),
	}
	for _, row := range rows {
		if !bytes.Contains(b, []byte(row)) {
			t.Errorf("docs/recipes.md does not contain %q", row)
		}
	}
}
