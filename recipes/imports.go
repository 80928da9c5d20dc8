package recipes

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxImportSize bounds the size of an imported file.
const maxImportSize = 1 << 20

// loaded is one recipe file with its imports merged in.
type loaded struct {
	// merged is the file's tree laid over its imports' merged trees, in
	// order: later imports win over earlier ones, the file over all.
	merged map[string]any
	// docs lists the documents involved, the one whose values win first.
	docs []*document
	// files lists the imported files in merge order, each once.
	files []string
}

// importLoader reads a recipe and, recursively, the files it imports. Each
// file is read and checked once; errors go to c.
type importLoader struct {
	c     *collector
	cache map[string]*loaded
}

// load parses one file and merges its imports. stack holds the files being
// loaded above this one, to find cycles. It returns nil when the file has a
// syntax error.
func (l *importLoader) load(name string, data []byte, stack []string) *loaded {
	l.c.noteFile(name)
	doc, synErr := parseDocument(name, data)
	if synErr != nil {
		l.c.list = append(l.c.list, synErr)
		return nil
	}
	// Unknown keys and wrong types are found file by file, so each error
	// names the file that has it.
	decode(doc.tree, new(Recipe), func(path, msg string) { l.c.addIn(doc, path, msg) })

	out := &loaded{}
	base := map[string]any{}
	var imported []*loaded
	imports, _ := doc.tree["imports"].([]any)
	for i, v := range imports {
		imp, ok := v.(string)
		if !ok {
			continue // already reported by decode
		}
		p := indexPath("imports", i)
		if msg := checkRelativeInside(imp, "recipe's folder"); msg != "" {
			l.c.addIn(doc, p, msg)
			continue
		}
		if hasReference(imp) {
			l.c.addIn(doc, p, `"${…}" is not expanded in imports`)
			continue
		}
		target := filepath.Join(filepath.Dir(name), filepath.FromSlash(imp))
		chain := append(append([]string{}, stack...), filepath.Clean(name))
		if at := indexOf(chain, target); at >= 0 {
			cycle := append(chain[at:], target)
			l.c.addIn(doc, p, "import cycle: "+strings.Join(cycle, " -> "))
			continue
		}
		sub, ok := l.cache[target]
		if !ok {
			b, err := readImport(target)
			if err != nil {
				l.c.addIn(doc, p, err.Error())
				continue
			}
			sub = l.load(target, b, chain)
			l.cache[target] = sub
		}
		if sub == nil {
			continue // its syntax error is reported
		}
		base = mergeTables(base, sub.merged)
		imported = append(imported, sub)
		for _, f := range append(sub.files, target) {
			if indexOf(out.files, f) < 0 {
				out.files = append(out.files, f)
			}
		}
	}
	own := make(map[string]any, len(doc.tree))
	for k, v := range doc.tree {
		if k != "imports" {
			own[k] = v
		}
	}
	out.merged = mergeTables(base, own)
	out.docs = []*document{doc}
	for i := len(imported) - 1; i >= 0; i-- {
		out.docs = append(out.docs, imported[i].docs...)
	}
	return out
}

// readImport reads an imported file, refusing anything but a regular file
// of reasonable size.
func readImport(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("imported file %s does not exist", path)
		}
		return nil, fmt.Errorf("read import: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read import: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("imported file %s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxImportSize+1))
	if err != nil {
		return nil, fmt.Errorf("read import %s: %w", path, err)
	}
	if len(b) > maxImportSize {
		return nil, fmt.Errorf("imported file %s is larger than %d bytes", path, maxImportSize)
	}
	return b, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
