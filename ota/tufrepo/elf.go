package tufrepo

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
)

// ErrNotExecutable: a file given as a release binary is not an ELF
// executable for linux on a supported architecture. Publishing it would
// leave every device that takes the release without a working agent.
var ErrNotExecutable = errors.New("tufrepo: not a linux executable")

// elfArch maps an ELF machine and class to Go's GOARCH for the
// architectures the agent is released for.
var elfArch = map[elf.Machine]struct {
	class elf.Class
	arch  string
}{
	elf.EM_X86_64:  {elf.ELFCLASS64, "amd64"},
	elf.EM_AARCH64: {elf.ELFCLASS64, "arm64"},
	elf.EM_ARM:     {elf.ELFCLASS32, "arm"},
	elf.EM_386:     {elf.ELFCLASS32, "386"},
	elf.EM_RISCV:   {elf.ELFCLASS64, "riscv64"},
}

// ReleaseArches lists the GOARCH values ExecutablePlatform recognises.
var ReleaseArches = []string{"amd64", "arm64", "arm", "386", "riscv64"}

// ExecutablePlatform reads the ELF header of the file at path and returns
// the GOOS and GOARCH it runs on, always "linux" for goos. A file that is
// not a little-endian ELF executable (or position-independent executable)
// for linux on one of ReleaseArches fails with a *NotExecutableError that
// says what the file is instead. For a Go binary the
// GOOS and GOARCH it was built with must agree with the header.
func ExecutablePlatform(path string) (goos, goarch string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if n < 4 || !bytes.Equal(head, []byte(elf.ELFMAG)) {
		return "", "", notExec(path, "%s", notELF(head[:n]))
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", "", notExec(path, "has an unreadable ELF header (%v)", err)
	}
	defer ef.Close()
	h := ef.FileHeader
	switch {
	case h.Type == elf.ET_EXEC:
	case h.Type == elf.ET_DYN && h.Entry != 0: // a position-independent executable
	case h.Type == elf.ET_DYN:
		return "", "", notExec(path, "is a shared library (ELF ET_DYN without an entry point), not an executable")
	default:
		return "", "", notExec(path, "is an ELF %s, not an executable", h.Type)
	}
	if h.OSABI != elf.ELFOSABI_NONE && h.OSABI != elf.ELFOSABI_LINUX {
		return "", "", notExec(path, "is built for %s, not linux", osabiName(h.OSABI))
	}
	// OpenBSD and NetBSD binaries say so only in a note section.
	for _, s := range ef.Sections {
		if other, ok := strings.CutPrefix(s.Name, ".note."); ok && strings.HasSuffix(other, ".ident") {
			return "", "", notExec(path, "is built for %s (section %s), not linux", strings.TrimSuffix(other, ".ident"), s.Name)
		}
	}
	a, ok := elfArch[h.Machine]
	if !ok || a.class != h.Class || h.Data != elf.ELFDATA2LSB {
		return "", "", notExec(path, "is built for %s (%s, %s); agent releases run on linux on %s",
			h.Machine, h.Class, h.Data, strings.Join(ReleaseArches, ", "))
	}
	goos, goarch = "linux", a.arch
	// A Go binary also records what it was built for; the header alone
	// does not tell linux from a BSD that reuses ELFOSABI_NONE.
	if bi, err := buildinfo.Read(f); err == nil {
		if s := setting(bi, "GOOS"); s != "" && s != goos {
			return "", "", notExec(path, "is a Go binary built for GOOS=%s, not linux", s)
		}
		if s := setting(bi, "GOARCH"); s != "" && s != goarch {
			return "", "", notExec(path, "has an ELF header for %s but was built for GOARCH=%s", goarch, s)
		}
	}
	return goos, goarch, nil
}

// NotExecutableError is why a file cannot be a release binary. It matches
// ErrNotExecutable with errors.Is.
type NotExecutableError struct {
	Path string
	// Why completes "Path ...", such as "is a script, not an ELF executable
	// for linux".
	Why string
}

// Error says what the file is and what publishing it would do.
func (e *NotExecutableError) Error() string {
	return e.Path + " " + e.Why + ": a device that installed it as its agent could not start it"
}

// Is reports whether target is ErrNotExecutable.
func (e *NotExecutableError) Is(target error) bool { return target == ErrNotExecutable }

func notExec(path, format string, args ...any) error {
	return &NotExecutableError{Path: path, Why: fmt.Sprintf(format, args...)}
}

func setting(bi *buildinfo.BuildInfo, key string) string {
	i := slices.IndexFunc(bi.Settings, func(s debug.BuildSetting) bool { return s.Key == key })
	if i < 0 {
		return ""
	}
	return bi.Settings[i].Value
}

// notELF says what a file that is not ELF looks like, from its first bytes.
func notELF(head []byte) string {
	switch {
	case len(head) == 0:
		return "is empty"
	case bytes.HasPrefix(head, []byte("MZ")):
		return "is a Windows executable, not an ELF executable for linux"
	case bytes.Equal(head, []byte{0xcf, 0xfa, 0xed, 0xfe}), bytes.Equal(head, []byte{0xce, 0xfa, 0xed, 0xfe}),
		bytes.Equal(head, []byte{0xca, 0xfe, 0xba, 0xbe}):
		return "is a macOS (Mach-O) executable, not an ELF executable for linux"
	case bytes.HasPrefix(head, []byte("#!")):
		return "is a script, not an ELF executable for linux"
	case head[0] == 0x1f && len(head) > 1 && head[1] == 0x8b:
		return "is a gzip archive, not an ELF executable for linux; give the binary itself"
	default:
		return "is not an ELF executable for linux"
	}
}

func osabiName(abi elf.OSABI) string {
	s := strings.ToLower(strings.TrimPrefix(abi.String(), "ELFOSABI_"))
	if s == "" {
		return "another system"
	}
	return s
}
