package deploy

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every way a client can name a file badly is refused up front, with the
// name quoted; good names, deep or wide, pass.
func TestCheckFileNames(t *testing.T) {
	long := strings.Repeat("a", MaxFileNameComponent+1)
	deep := strings.Repeat("d/", MaxFileNamePath/2) + "x"
	for _, tc := range []struct {
		names []string
		bad   string // the name an error must quote; "" = accepted
		why   string
	}{
		{[]string{"a.recipe.toml", "lib/common.toml", "lib/common.toml.sig", "a-b", "a/b-c"}, "", ""},
		{[]string{strings.Repeat("a", MaxFileNameComponent)}, "", ""},
		{[]string{"."}, ".", `"." component`},
		{[]string{""}, "", "empty"},
		{[]string{"./a.recipe.toml"}, "./a.recipe.toml", `"." component`},
		{[]string{"a/./b"}, "a/./b", `"." component`},
		{[]string{"../a"}, "../a", `".." component`},
		{[]string{"a/../../b"}, "a/../../b", `".." component`},
		{[]string{"/etc/passwd"}, "/etc/passwd", "relative"},
		{[]string{"a//b"}, "a//b", "empty path component"},
		{[]string{"a/"}, "a/", "empty path component"},
		{[]string{"a\x00b"}, "a\x00b", "control character"},
		{[]string{"a\nb"}, "a\nb", "control character"},
		{[]string{"a\x1b[2Jb"}, "a\x1b[2Jb", "control character"},
		{[]string{"a\xffb"}, "a\xffb", "not UTF-8"},
		{[]string{long}, long[:120], "more than 255"},
		{[]string{deep}, deep[:120], "more than 4096"},
		{[]string{"a", "a/b"}, "a", "folder of"},
		{[]string{"a", "a-b", "a/b/c"}, "a", "folder of"},
		{[]string{"x/a", "x/a/b"}, "x/a", "folder of"},
	} {
		files := map[string][]byte{}
		for _, n := range tc.names {
			files[n] = []byte("x")
		}
		err := CheckFileNames(files)
		if tc.why == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.names, err)
			}
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want a *ValidationError", tc.names, err)
			continue
		}
		quoted := strconv.Quote(tc.bad)
		quoted = quoted[:len(quoted)-1] // a long name is shortened after this
		if msg := err.Error(); !strings.Contains(msg, quoted) || !strings.Contains(msg, tc.why) {
			t.Errorf("%q: %q, want it to quote the name as %s… and say %q", tc.names, msg, quoted, tc.why)
		}
		if strings.ContainsAny(err.Error(), "\x00\x1b") {
			t.Errorf("%q: the error carries raw control characters: %q", tc.names, err)
		}
	}
}

// A staging that fails part way removes its folder: nothing is left for
// the next start to find.
func TestStageFilesRemovesItsFolderOnFailure(t *testing.T) {
	parent := t.TempDir()
	// CheckFileNames refuses this pair; stageFiles is given it anyway, to
	// fail after it has created its folder and written a file.
	_, err := stageFiles(parent, map[string][]byte{"a": []byte("x"), "a/b": []byte("y")})
	if err == nil {
		t.Fatal("staging a file and a folder of the same name succeeded")
	}
	if left, _ := filepath.Glob(filepath.Join(parent, stagingPrefix+"*")); len(left) > 0 {
		t.Fatalf("staging folders left after a failure: %v", left)
	}
	if msg := withoutPath(err).Error(); strings.Contains(msg, parent) {
		t.Errorf("the error shown to clients names the data folder: %q", msg)
	}
	st, err := stageFiles(parent, map[string][]byte{"lib/x.toml": []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(st.files, "lib", "x.toml")); err != nil || string(b) != "x" {
		t.Fatalf("staged file: %q %v", b, err)
	}
	if entries, _ := os.ReadDir(st.repo); len(entries) != 0 {
		t.Fatalf("the repository folder is not empty: %v", entries)
	}
}
