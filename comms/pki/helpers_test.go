package pki

import (
	"encoding/pem"
	"testing"
)

func decodeOne(t *testing.T, data []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM")
	}
	return b.Bytes
}

func reencode(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockCSR, Bytes: der})
}
