package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// PEM block types written and read.
const (
	blockPrivateKey  = "PRIVATE KEY"
	blockCertificate = "CERTIFICATE"
	blockCSR         = "CERTIFICATE REQUEST"
)

// File modes of what the package writes.
const (
	KeyMode  fs.FileMode = 0o600 // private keys
	CertMode fs.FileMode = 0o644 // certificates and requests
)

// ErrInsecureKeyFile is returned for a private key file that group or
// others may read or write.
var ErrInsecureKeyFile = errors.New("private key file is accessible by group or others")

// maxPEMBytes bounds what is read of a key, certificate or request file.
const maxPEMBytes = 1 << 20

// GenerateKey makes a new ECDSA P-256 key. random nil means crypto/rand.
func GenerateKey(random io.Reader) (*ecdsa.PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), random)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// MarshalKey encodes a private key as PEM PKCS#8 ("PRIVATE KEY").
func MarshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: blockPrivateKey, Bytes: der}), nil
}

// ParseKey decodes a PEM private key: PKCS#8, SEC 1 ("EC PRIVATE KEY") or
// PKCS#1 ("RSA PRIVATE KEY"), the forms OpenSSL and other CAs write.
func ParseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case blockPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// LoadKey reads a private key file, refusing with ErrInsecureKeyFile one
// whose mode gives group or others any access.
func LoadKey(path string) (crypto.Signer, error) {
	data, info, err := readSmall(path)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load private key %s: %w: mode is %04o, must be 0600 or stricter (run: chmod 600 %s)",
			path, ErrInsecureKeyFile, perm, path)
	}
	key, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w", path, err)
	}
	return key, nil
}

// ParseCertificate decodes the first PEM certificate in data.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if block.Type == blockCertificate {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			return cert, nil
		}
	}
}

// LoadCertificate reads the first certificate of a PEM file.
func LoadCertificate(path string) (*x509.Certificate, error) {
	data, _, err := readSmall(path)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	cert, err := ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s: %w", path, err)
	}
	return cert, nil
}

// EncodeCertificate encodes a DER certificate as PEM.
func EncodeCertificate(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockCertificate, Bytes: der})
}

// SamePublicKey reports whether key is the private half of cert's key.
func SamePublicKey(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	return ok && pub.Equal(cert.PublicKey)
}

// checkPublicKey refuses keys too weak to sign for, or of a kind TLS
// libraries do not all take.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return errors.New("the ECDSA key's curve is not P-256, P-384 or P-521")
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("the RSA key has %d bits, fewer than 2048", k.N.BitLen())
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("a key of type %T is not supported (want ECDSA, RSA or Ed25519)", pub)
}

// WriteNew writes data to a new file at path with exactly mode perm and
// syncs it; an existing file is never replaced (the error matches
// fs.ErrExist). A partly written file is removed.
func WriteNew(path string, data []byte, perm fs.FileMode) (retErr error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	if err := f.Chmod(perm); err != nil { // the umask only clears bits
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func readSmall(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPEMBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, info, nil
}
