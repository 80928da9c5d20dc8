// Package transcript runs the scenario scripts of the decision cores'
// tests (supervisor/testdata/core_*.txt, supervisor/deploy/testdata/core_*.txt).
// A script is blocks of a command line, a "----" line and the exact output
// expected back, each ended by a blank line; "#" lines between blocks are
// comments. With -rewrite the scripts are written again with what the test
// gave, for review with git diff. Model: etcd raft's interaction tests
// (datadriven). It is for tests only.
package transcript

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt transcripts with the actual output")

// RunFiles runs every file matching pattern as a subtest: newEnv makes a
// fresh environment for each file, whose do gives a command's output.
func RunFiles(t *testing.T, pattern string, newEnv func(t *testing.T) func(cmd string) string) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios match %s: %v", pattern, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			Run(t, file, newEnv(t))
		})
	}
}

// Run checks one script against do, or rewrites it.
func Run(t *testing.T, file string, do func(cmd string) string) {
	var rewritten strings.Builder
	for _, b := range parse(t, file) {
		if b.cmd == "" {
			rewritten.WriteString(b.comment + "\n")
			continue
		}
		got := do(b.cmd)
		fmt.Fprintf(&rewritten, "%s\n----\n%s\n", b.cmd, got)
		if !*rewrite && got != b.want {
			t.Errorf("%s:%d: %s\ngot:\n%swant:\n%s", file, b.line, b.cmd, got, b.want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(rewritten.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type block struct {
	comment string // a comment line, when cmd is ""
	cmd     string
	want    string
	line    int
}

func parse(t *testing.T, file string) []block {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	var cur *block
	inOut := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "#"):
			blocks = append(blocks, block{comment: line})
		case cur == nil && strings.TrimSpace(line) == "":
		case cur == nil:
			cur = &block{cmd: line, line: n}
		case !inOut && line == "----":
			inOut = true
		case inOut && strings.TrimSpace(line) == "":
			blocks = append(blocks, *cur)
			cur, inOut = nil, false
		case inOut:
			cur.want += line + "\n"
		default:
			t.Fatalf("%s:%d: expected ---- after the command", file, n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		blocks = append(blocks, *cur)
	}
	return blocks
}
