package tufrepo

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keystone-edge/keystone/internal/elftest"
)

func TestExecutablePlatformReadsTheELFHeader(t *testing.T) {
	for _, tc := range []struct {
		h    elftest.Header
		arch string
	}{
		{elftest.Header{Machine: elf.EM_X86_64}, "amd64"},
		{elftest.Header{Machine: elf.EM_AARCH64}, "arm64"},
		{elftest.Header{Machine: elf.EM_ARM}, "arm"},
		{elftest.Header{Machine: elf.EM_386}, "386"},
		{elftest.Header{Machine: elf.EM_RISCV}, "riscv64"},
		{elftest.Header{Machine: elf.EM_AARCH64, Type: elf.ET_DYN}, "arm64"}, // position-independent
		{elftest.Header{Machine: elf.EM_X86_64, OSABI: elf.ELFOSABI_LINUX}, "amd64"},
	} {
		p := elftest.Write(t, "agent", tc.h, "")
		goos, goarch, err := ExecutablePlatform(p)
		if err != nil || goos != "linux" || goarch != tc.arch {
			t.Errorf("%v: ExecutablePlatform = %s/%s, %v; want linux/%s", tc.h.Machine, goos, goarch, err, tc.arch)
		}
	}
}

func TestExecutablePlatformOfARealGoBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the test binary is an ELF file on linux only")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	goos, goarch, err := ExecutablePlatform(self)
	if err != nil || goos != "linux" || goarch != runtime.GOARCH {
		t.Fatalf("ExecutablePlatform(test binary) = %s/%s, %v; want linux/%s", goos, goarch, err, runtime.GOARCH)
	}
}

func TestExecutablePlatformRefusesWhatDoesNotRunOnLinux(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, []byte(body))
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"text", file("notes.txt", "release notes\n"), "not an ELF executable for linux"},
		{"script", file("agent.sh", "#!/bin/sh\nexec keystone-agent\n"), "is a script"},
		{"empty", file("empty", ""), "is empty"},
		{"windows", file("agent.exe", "MZ\x90\x00rest"), "Windows executable"},
		{"macos", file("agent-darwin", "\xcf\xfa\xed\xfe rest"), "macOS"},
		{"archive", file("agent.tar.gz", "\x1f\x8b\x08\x00rest"), "gzip archive"},
		{"freebsd", elftest.Write(t, "a", elftest.Header{OSABI: elf.ELFOSABI_FREEBSD}, ""), "built for freebsd"},
		{"mips", elftest.Write(t, "a", elftest.Header{Machine: elf.EM_MIPS, Class: elf.ELFCLASS32}, ""), "EM_MIPS"},
		{"big-endian arm64", elftest.Write(t, "a", elftest.Header{Machine: elf.EM_AARCH64, Data: elf.ELFDATA2MSB}, ""), "ELFDATA2MSB"},
		{"x32", elftest.Write(t, "a", elftest.Header{Machine: elf.EM_X86_64, Class: elf.ELFCLASS32}, ""), "ELFCLASS32"},
		{"shared library", elftest.Write(t, "a", elftest.Header{Type: elf.ET_DYN, NoEntry: true}, ""), "shared library"},
		{"object file", elftest.Write(t, "a", elftest.Header{Type: elf.ET_REL}, ""), "ET_REL, not an executable"},
		{"truncated header", file("short", "\x7fELF\x02\x01"), "unreadable ELF header"},
	} {
		_, _, err := ExecutablePlatform(tc.path)
		if !errors.Is(err, ErrNotExecutable) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ExecutablePlatform error = %v; want ErrNotExecutable saying %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := ExecutablePlatform(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: error = %v, want ErrNotExist", err)
	}
}
