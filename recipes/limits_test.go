package recipes_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"unicode"

	"github.com/keystone-edge/keystone/recipes"
)

// allocated returns the bytes allocated while f runs, by the whole process.
// Total allocation bounds the peak heap from above (what is freed was first
// allocated), so a bound on it is the stricter check, and unlike the peak
// it does not depend on when the collector happens to run.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// memoryBudget is what parsing (and rendering) n bytes of input may
// allocate: linear in the input, with room for fixed costs.
func memoryBudget(n int) uint64 {
	return 64*uint64(n) + 16<<20
}

const limitsHead = "format = 1\n[metadata]\nname = \"com.example.deep\"\nversion = \"1.0.0\"\nkind = \"process\"\n" +
	"[lifecycle.run]\ncommand = \"./x\"\n"

// keys returns n keys "k1.k2…kn" (or "k1" … "kn" joined by sep).
func keys(n int, sep string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("k%d", i+1)
	}
	return strings.Join(parts, sep)
}

func TestParseRefusesPathsNestedTooDeep(t *testing.T) {
	const deep = 7000 // far past the limit, where quadratic costs show
	var chain strings.Builder
	for i := range 33 {
		chain.WriteString("[[" + strings.Repeat("a.", i) + "a]]\n")
	}
	combined := "[" + keys(30, ".") + "]\n" + keys(30, ".") + " = { b = { c = [[[[1]]]] } }\n"
	for _, tc := range []struct {
		name, text string
		line, col  int
	}{
		{"dotted key", strings.Repeat("a.", deep) + "a = 1\n", 1, 129},
		{"table header", "[" + strings.Repeat("a.", deep) + "a]\n", 1, 130},
		{"array of tables header", "[[" + strings.Repeat("a.", deep) + "a]]\n", 1, 131},
		{"inline tables", "x = " + strings.Repeat("{a=", deep) + "1" + strings.Repeat("}", deep) + "\n", 1, 195},
		// Arrays have no position of their own: the error names the key.
		{"arrays", "x = " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n", 1, 1},
		// 30 header parts, 30 dotted key parts, b and c, then the third
		// array level is the 65th; the error names c.
		{"combined", combined, 2, strings.Index(combined, "c = [") - strings.IndexByte(combined, '\n')},
		// [[a]] [[a.a]] …: each part is an array, and its index a level.
		{"arrays of tables", chain.String(), 33, 67},
	} {
		tc.text += limitsHead
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = recipes.ParseRecipe("deep.recipe.toml", []byte(tc.text)) })
			var list recipes.ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Fatalf("got %v, want one error", err)
			}
			fe := list[0]
			if !strings.Contains(fe.Message, "nested more than 64 levels deep") || fe.Line != tc.line || fe.Col != tc.col {
				t.Errorf("got %d:%d %q, want the depth limit at %d:%d", fe.Line, fe.Col, fe.Message, tc.line, tc.col)
			}
			if budget := memoryBudget(len(tc.text)); n > budget {
				t.Errorf("parsing %d bytes allocated %d bytes, more than %d", len(tc.text), n, budget)
			}
		})
	}
}

func TestParseAcceptsPathsAtTheDepthLimit(t *testing.T) {
	// config.defaults, 61 keys and an array element: 64 parts.
	text := limitsHead + "[config.defaults]\n" + keys(61, ".") + " = [1]\n"
	r, err := recipes.ParseRecipe("deep.recipe.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Render(nil, recipes.Vars{}); err != nil {
		t.Fatal(err)
	}
	// config.defaults, t, 61 keys and z: 65.
	_, err = recipes.ParseRecipe("deep.recipe.toml", []byte(text+"[config.defaults.t."+keys(61, ".")+"]\nz = 1\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "deep.recipe.toml:11:1: config.defaults.t.k1.k2.") {
		t.Errorf("65 parts: got %v, want the depth limit at 11:1", err)
	}
}

func TestParseRefusesFilesTooLarge(t *testing.T) {
	text := limitsHead + "# " + strings.Repeat("x", recipes.MaxFileSize) + "\n"
	_, err := recipes.ParseRecipe("big.recipe.toml", []byte(text))
	if err == nil || !strings.Contains(err.Error(), "big.recipe.toml:8:32654: the file is larger than 32768 bytes") {
		t.Errorf("recipe: got %v, want the size limit", err)
	}
	_, err = recipes.ParseManifest("big.toml", []byte("format = 1\n# "+strings.Repeat("x", recipes.MaxFileSize)+"\n"))
	if err == nil || !strings.Contains(err.Error(), "big.toml:2:32758: the file is larger than 32768 bytes") {
		t.Errorf("manifest: got %v, want the size limit", err)
	}
}

// The position index keeps each key once: many keys under a long [table]
// header, or a long key at every level, cost their own size, not that of
// every path they are part of.
func TestParsePositionIndexIsLinear(t *testing.T) {
	long := strings.Repeat("k", 14<<10)
	var b strings.Builder
	b.WriteString(limitsHead + "[config.defaults." + long + "]\n")
	for i := range 1700 {
		fmt.Fprintf(&b, "v%d=1\n", i)
	}
	b.WriteString("[config.defaults.x]\n" + strings.Repeat(long[:60]+".", 60) + "y = 1\n")
	text := b.String()
	var err error
	n := allocated(func() { _, err = recipes.ParseRecipe("long.recipe.toml", []byte(text)) })
	if err != nil {
		t.Fatal(err)
	}
	if budget := memoryBudget(len(text)); n > budget {
		t.Errorf("parsing %d bytes allocated %d bytes, more than %d", len(text), n, budget)
	}
}

// deepTable returns {k = {k = … {leaf = leaf}}}, depth tables deep.
func deepTable(depth int, leaf string) map[string]any {
	t := map[string]any{"leaf": leaf}
	for range depth - 1 {
		t = map[string]any{"k": t, "leaf": leaf}
	}
	return t
}

func TestEffectiveConfigOfDeepTablesIsLinear(t *testing.T) {
	const depth = 500
	var defaults, device map[string]any
	unit := allocated(func() { defaults = deepTable(depth, "default") })
	device = deepTable(depth, "device")
	var out map[string]any
	n := allocated(func() { out = recipes.EffectiveConfig(defaults, device, nil) })
	if budget := 8*unit + 1<<20; n > budget {
		t.Errorf("merging two tables %d deep allocated %d bytes, more than %d (one table is %d)", depth, n, budget, unit)
	}
	cur := out
	for range depth - 1 {
		if cur["leaf"] != "device" {
			t.Fatalf("leaf = %v, want the device's", cur["leaf"])
		}
		cur = cur["k"].(map[string]any)
	}
}

func TestRenderOfDeepConfigIsLinear(t *testing.T) {
	const depth = 500
	r, err := recipes.ParseRecipe("deep.recipe.toml", []byte(limitsHead))
	if err != nil {
		t.Fatal(err)
	}
	r.Lifecycle.Run.Args = []string{"${config." + strings.Repeat("k.", depth-1) + "leaf}", "${config.k.leaf}"}
	var device map[string]any
	unit := allocated(func() { device = deepTable(depth, "device") })
	r.Config.Defaults = deepTable(depth, "default") // deeper than a file may be, as a device's config can be
	config := recipes.EffectiveConfig(r.Config.Defaults, device, nil)
	delete(config["k"].(map[string]any), "leaf") // the default fills it
	var out *recipes.Recipe
	n := allocated(func() { out, err = r.Render(config, recipes.Vars{}) })
	if err != nil {
		t.Fatal(err)
	}
	if budget := 8*unit + 1<<20; n > budget {
		t.Errorf("rendering with a config %d deep allocated %d bytes, more than %d (the config is %d)", depth, n, budget, unit)
	}
	if got := out.Lifecycle.Run.Args; got[0] != "device" || got[1] != "default" {
		t.Errorf("args = %q, want the device's deepest leaf and the default beneath a missing key", got)
	}
}

func TestRenderLooksUpDefaultsBeneathConfig(t *testing.T) {
	r, err := recipes.ParseRecipe("layers.recipe.toml", []byte(limitsHead+
		"args = [\"${config.db.host}:${config.db.port}\"]\n[config.defaults]\ndb = { host = \"h\", port = 1 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Render(map[string]any{"db": map[string]any{"port": int64(2)}}, recipes.Vars{})
	if err != nil || out.Lifecycle.Run.Args[0] != "h:2" {
		t.Errorf("got %v, %v; want h:2", out, err)
	}
	_, err = r.Render(map[string]any{"db": "x"}, recipes.Vars{})
	if err == nil || !strings.Contains(err.Error(), `config value "db" is not a table`) {
		t.Errorf("a table replaced by a string: got %v", err)
	}
}

// checkPrintable fails when a line of text has a rune a terminal could act
// on rather than print.
func checkPrintable(t *testing.T, what, text string) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		for _, r := range line {
			if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Errorf("%s: control character %U in %q", what, r, line)
				break
			}
		}
	}
}

func TestErrorsEscapeControlCharacters(t *testing.T) {
	text := "format = 1\nimports = [\"a\\u0000.toml\", \"b\\u001b[2J/../../c.toml\"]\n" +
		"[metadata]\nname = \"com.example.esc\"\nversion = \"1.0.0\"\nkind = \"process\"\n" +
		"[lifecycle.run]\ncommand = \"${config.\\u001b[2J\\u001b[31m}\"\nargs = [\"${\\u202e}\", \"\\u0007${x\\u0000}\"]\n"
	_, err := recipes.ParseRecipe("esc\x1b]0;title\x07.recipe.toml", []byte(text))
	if err == nil {
		t.Fatal("parsed")
	}
	checkPrintable(t, "ParseRecipe", err.Error())
	var list recipes.ErrorList
	if errors.As(err, &list) {
		for _, fe := range list {
			checkPrintable(t, "FieldError.Message", fe.Message)
			checkPrintable(t, "FieldError.Path", fe.Path)
		}
	}
	for _, want := range []string{`${config.\x1b[2J\x1b[31m}`, `"a\x00.toml"`, `${\u202e}`, `esc\x1b]0;title\a.recipe.toml`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}

	fe := &recipes.FieldError{File: "a\nb", Line: 1, Path: "p\x1b", Message: "m\r\x00\u009b\xff\u2028 ok, Ünïcödé"}
	if got, want := fe.Error(), `a\nb:1: p\x1b: m\r\x00\u009b\xff\u2028 ok, Ünïcödé`; got != want {
		t.Errorf("FieldError.Error() = %q, want %q", got, want)
	}
	_, err = recipes.Interpolate("${\x1b[2J}", func(string) (string, bool) { return "", false })
	checkPrintable(t, "Interpolate", err.Error())
}
