package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
)

// NewCSR makes a PEM certificate signing request for key with common
// name cn: what a device sends to the CA so that its key never leaves it.
func NewCSR(key crypto.Signer, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, fmt.Errorf("make a certificate signing request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: blockCSR, Bytes: der}), nil
}

// ParseCSR decodes a PEM certificate signing request and checks it: its
// signature (the sender holds the key), that its common name is wantCN,
// and that its key is one the CA signs for. Nothing else the request asks
// for (names, extensions) is taken over into a certificate.
func ParseCSR(data []byte, wantCN string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found: want a CERTIFICATE REQUEST")
	}
	if block.Type != blockCSR && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("PEM block is %q, want CERTIFICATE REQUEST", block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the certificate request's signature does not verify: %w", err)
	}
	if csr.Subject.CommonName != wantCN {
		return nil, fmt.Errorf("the certificate request is for %q, not %q", csr.Subject.CommonName, wantCN)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return csr, nil
}
