// Package elftest writes minimal ELF files — a header and nothing else —
// for tests of code that reads what platform a binary is for, without
// cross-compiling anything.
package elftest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// Header describes the file to write. Zero fields take the values of a
// linux/amd64 executable.
type Header struct {
	Class   elf.Class   // 0 = the class Machine normally has (ELFCLASS64 for 64-bit machines)
	Data    elf.Data    // 0 = ELFDATA2LSB
	OSABI   elf.OSABI   // 0 = ELFOSABI_NONE, as Go writes for linux
	Type    elf.Type    // 0 = ET_EXEC
	Machine elf.Machine // 0 = EM_X86_64
	Entry   uint64      // 0 = 0x401000 (a shared library has none: set Type ET_DYN and NoEntry)
	NoEntry bool        // write an entry point of 0
}

// Bytes returns the ELF header h describes.
func (h Header) Bytes() []byte {
	if h.Machine == 0 {
		h.Machine = elf.EM_X86_64
	}
	if h.Class == 0 {
		h.Class = elf.ELFCLASS64
		if h.Machine == elf.EM_ARM || h.Machine == elf.EM_386 {
			h.Class = elf.ELFCLASS32
		}
	}
	if h.Data == 0 {
		h.Data = elf.ELFDATA2LSB
	}
	if h.Type == 0 {
		h.Type = elf.ET_EXEC
	}
	if h.Entry == 0 && !h.NoEntry {
		h.Entry = 0x401000
	}
	var order binary.ByteOrder = binary.LittleEndian
	if h.Data == elf.ELFDATA2MSB {
		order = binary.BigEndian
	}
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(h.Class), byte(h.Data), byte(elf.EV_CURRENT), byte(h.OSABI)}
	var b bytes.Buffer
	if h.Class == elf.ELFCLASS32 {
		_ = binary.Write(&b, order, elf.Header32{Ident: ident, Type: uint16(h.Type), Machine: uint16(h.Machine),
			Version: uint32(elf.EV_CURRENT), Entry: uint32(h.Entry), Ehsize: 52})
	} else {
		_ = binary.Write(&b, order, elf.Header64{Ident: ident, Type: uint16(h.Type), Machine: uint16(h.Machine),
			Version: uint32(elf.EV_CURRENT), Entry: h.Entry, Ehsize: 64})
	}
	return b.Bytes()
}

// Write writes h, followed by body (to tell files apart), to a new file
// name in a temporary folder of t, mode 0755, and returns its path.
func Write(t testing.TB, name string, h Header, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, append(h.Bytes(), body...), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
