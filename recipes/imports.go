package recipes

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

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
	// dir is the recipe's folder. Every import is read through root, opened
	// on dir when first needed, so that none can leave that folder tree,
	// not even through a symbolic link.
	dir  string
	root *os.Root
}

// close releases the recipe's folder.
func (l *importLoader) close() {
	if l.root != nil {
		l.root.Close()
	}
}

// load parses one file and merges its imports. rel is the file's path
// inside l.dir; stack holds the files being loaded above this one, to find
// cycles. It returns nil when the file has a syntax error.
func (l *importLoader) load(name, rel string, data []byte, stack []string) *loaded {
	l.c.noteFile(name)
	doc, synErr := parseDocument(name, data)
	if synErr != nil {
		l.c.list = append(l.c.list, synErr)
		return nil
	}
	// Unknown keys and wrong types are found file by file, so each error
	// names the file that has it.
	decode(doc.tree, new(Recipe), func(path, msg string) { l.c.addIn(doc, path, msg) })

	out := &loaded{merged: map[string]any{}}
	var imported []*loaded
	chain := append(slices.Clone(stack), filepath.Clean(name))
	imports, _ := doc.tree["imports"].([]any)
	for i, v := range imports {
		sub, target := l.loadImport(doc, rel, indexPath("imports", i), v, chain)
		if sub == nil {
			continue
		}
		mergeInto(out.merged, sub.merged)
		imported = append(imported, sub)
		for _, f := range append(sub.files, target) {
			if indexOf(out.files, f) < 0 {
				out.files = append(out.files, f)
			}
		}
	}
	// The file's own tree is not used past here: its values are taken, not
	// copied.
	own := make(map[string]any, len(doc.tree))
	for k, v := range doc.tree {
		if k != "imports" {
			own[k] = v
		}
	}
	adopt(out.merged, own)
	out.docs = []*document{doc}
	for i := len(imported) - 1; i >= 0; i-- {
		out.docs = append(out.docs, imported[i].docs...)
	}
	return out
}

// loadImport loads the import v, written at path p of doc (whose path
// inside l.dir is rel), and returns it with its file name; nil when it
// cannot be used, which is reported.
func (l *importLoader) loadImport(doc *document, rel, p string, v any, chain []string) (*loaded, string) {
	imp, ok := v.(string)
	if !ok {
		return nil, "" // already reported by decode
	}
	if msg := checkRelativeInside(imp, "recipe's folder"); msg != "" {
		l.c.addIn(doc, p, msg)
		return nil, ""
	}
	if hasReference(imp) {
		l.c.addIn(doc, p, `"${…}" is not expanded in imports`)
		return nil, ""
	}
	target := filepath.Join(filepath.Dir(doc.name), filepath.FromSlash(imp))
	if at := indexOf(chain, target); at >= 0 {
		cycle := append(chain[at:], target)
		l.c.addIn(doc, p, "import cycle: "+strings.Join(cycle, " -> "))
		return nil, ""
	}
	sub, ok := l.cache[target]
	if !ok {
		subRel := filepath.Join(filepath.Dir(rel), filepath.FromSlash(imp))
		b, err := l.readImport(subRel, imp)
		if err != nil {
			l.c.addIn(doc, p, err.Error())
			return nil, ""
		}
		sub = l.load(target, subRel, b, chain)
		l.cache[target] = sub
	}
	if sub == nil {
		return nil, "" // its syntax error is reported
	}
	return sub, target
}

// readImport reads the import imp, at rel inside the recipe's folder. The
// folder's root refuses a path, or a symbolic link, that leads out of it;
// the type is checked before the open and again on the open file, and the
// open does not block, so that a FIFO or a device cannot hang the parse.
// Errors name the import as it is written, and say no more about the file.
func (l *importLoader) readImport(rel, imp string) ([]byte, error) {
	what := fmt.Sprintf("imported file %q", imp)
	if l.root == nil {
		root, err := os.OpenRoot(l.dir)
		if err != nil {
			return nil, importError(what, err)
		}
		l.root = root
	}
	st, err := l.root.Stat(rel)
	if err != nil {
		return nil, importError(what, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", what)
	}
	f, err := l.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, importError(what, err)
	}
	defer f.Close()
	b, err := readRegular(f)
	switch {
	case errors.Is(err, errNotRegular):
		return nil, fmt.Errorf("%s is not a regular file", what)
	case errors.Is(err, errTooLarge):
		return nil, fmt.Errorf("%s is %v", what, err)
	case err != nil:
		return nil, fmt.Errorf("%s cannot be read: %v", what, err)
	}
	return b, nil
}

// importError explains why an import could not be opened.
func importError(what string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%s does not exist", what)
	case escapesRoot(err):
		return fmt.Errorf("%s leads out of the recipe's folder (through a symbolic link)", what)
	}
	return fmt.Errorf("%s cannot be read: %v", what, errCause(err))
}

// escapesRoot reports the error os.Root gives for a path that leaves it.
// os does not export that error, so it is told by its text; were the text
// to change, the import would still be refused, with the plain cause.
func escapesRoot(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err.Error() == "path escapes from parent"
}

// errCause drops the path from a file system error, as the message names
// the file its own way.
func errCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var (
	// errNotRegular marks a FIFO, device, socket or folder where a file is due.
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = fmt.Errorf("larger than %d bytes (32 KiB)", maxFileSize)
)

// readFile reads a recipe or manifest named by its path. Only a regular
// file is read: a FIFO would wait for a writer that may never come, and a
// device may never end. The type is checked before the open and again on
// the open file, as the path may change in between, and the open does not
// block either way. Errors are *fs.PathError, with control characters in
// the path escaped.
func readFile(path string) ([]byte, error) {
	fail := func(op string, err error) ([]byte, error) {
		return nil, &fs.PathError{Op: op, Path: printable(path), Err: errCause(err)}
	}
	st, err := os.Stat(path)
	if err != nil {
		return fail("stat", err)
	}
	if !st.Mode().IsRegular() {
		return fail("read", errNotRegular)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fail("open", err)
	}
	defer f.Close()
	b, err := readRegular(f)
	if err != nil {
		return fail("read", err)
	}
	return b, nil
}

// readRegular reads an open file, refusing anything but a regular file of
// at most maxFileSize bytes.
func readRegular(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, errCause(err)
	}
	if !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, errCause(err)
	}
	if len(b) > maxFileSize {
		return nil, errTooLarge
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
