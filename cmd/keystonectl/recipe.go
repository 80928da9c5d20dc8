package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/ota/sign"
)

func newRecipeCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("recipe", "Validate, sign and verify component recipes",
		`Validate component recipes and deployment manifests, and sign recipes or
check their detached signatures (<file>.sig) with ed25519 keys.`,
		`  keystonectl recipe sign --key ops.key hello.recipe.toml
  keystonectl recipe verify --pub ops.pub hello.recipe.toml`)
	cmd.AddCommand(newRecipeSignCmd(opts))
	cmd.AddCommand(newRecipeVerifyCmd(opts))
	return cmd
}

// signResult is what recipe sign reports for one file.
type signResult struct {
	File      string `json:"file"`
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
}

func newRecipeSignCmd(opts *options) *cobra.Command {
	var keyPath string
	cmd := &cobra.Command{
		Use:   "sign --key KEY FILE...",
		Short: "Write detached signatures for recipes",
		Long: `Sign each FILE's exact bytes with the ed25519 private key KEY and write the
signature beside it as FILE.sig (base64, one line), replacing an older one.
An agent runs a local recipe only when FILE.sig verifies with a key in its
trust.keys. Any later change to FILE, even one byte, invalidates the
signature; sign after the last edit, and validate first.

KEY must not be readable by group or others (chmod 600).

Exit codes:
  0  every FILE was signed
  1  the key could not be used or a FILE could not be signed (files listed
     before it were signed)
  2  usage error`,
		Example: `  keystonectl recipe sign --key ops.key hello.recipe.toml
  keystonectl recipe sign --key ops.key recipes/*.recipe.toml`,
		Args: minArgs(1, "FILE..."),
		RunE: func(cmd *cobra.Command, files []string) error {
			if keyPath == "" {
				return flagErrorf(cmd, "--key KEY is required")
			}
			priv, err := sign.LoadPrivateKey(keyPath)
			if err != nil {
				return err
			}
			keyID := sign.KeyID(priv.Public().(ed25519.PublicKey))
			results := make([]signResult, 0, len(files))
			var failure error
			for _, file := range files {
				if err := sign.SignFileWithKey(priv, file); err != nil {
					failure = err
					break
				}
				results = append(results, signResult{File: file, Signature: sign.SigPath(file), KeyID: keyID})
			}
			t := table{header: []string{"FILE", "SIGNATURE", "KEY ID"}}
			for _, r := range results {
				t.rows = append(t.rows, []string{r.File, r.Signature, r.KeyID})
			}
			if len(results) > 0 || failure == nil {
				if err := opts.render(results, t); err != nil {
					return err
				}
			}
			return failure
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key `FILE` (from keys generate; required)")
	return cmd
}

// verifyResult is what recipe verify reports for one file.
type verifyResult struct {
	File  string `json:"file"`
	Valid bool   `json:"valid"`
	KeyID string `json:"key_id,omitempty"` // the key that signed it, when valid
	Error string `json:"error,omitempty"`  // why not, when not valid
}

func newRecipeVerifyCmd(opts *options) *cobra.Command {
	var pubs []string
	cmd := &cobra.Command{
		Use:   "verify --pub PUB [--pub PUB...] FILE...",
		Short: "Check recipes against their detached signatures",
		Long: `Check that each FILE.sig is an ed25519 signature of FILE's exact bytes by one
of the public keys given with --pub (repeatable), as the agent does with the
keys in trust.keys. Each FILE is reported with the key ID that signed it, or
the reason it failed: no FILE.sig, a changed FILE, or a key not given.

Exit codes:
  0  every FILE has a valid signature by one of the keys
  1  at least one FILE failed, or a key could not be read
  2  usage error`,
		Example: `  keystonectl recipe verify --pub ops.pub hello.recipe.toml
  keystonectl recipe verify --pub ops.pub --pub ci.pub recipes/*.recipe.toml`,
		Args: minArgs(1, "FILE..."),
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(pubs) == 0 {
				return flagErrorf(cmd, "--pub PUB is required (at least one)")
			}
			ring, err := sign.LoadKeyring(pubs...)
			if err != nil {
				return err
			}
			results := make([]verifyResult, 0, len(files))
			t := table{header: []string{"FILE", "RESULT", "KEY ID"}}
			failed := 0
			for _, file := range files {
				r := verifyResult{File: file}
				keyID, err := ring.VerifyFile(file)
				if err != nil {
					failed++
					r.Error = err.Error()
					t.rows = append(t.rows, []string{file, "FAILED: " + verifyReason(err), "-"})
				} else {
					r.Valid, r.KeyID = true, keyID
					t.rows = append(t.rows, []string{file, "ok", keyID})
				}
				results = append(results, r)
			}
			if err := opts.render(results, t); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d file(s) failed signature verification", failed, len(files))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&pubs, "pub", nil, "trusted public key `FILE` (repeatable; at least one)")
	return cmd
}

// verifyReason says briefly why a signature check failed, for the table.
func verifyReason(err error) string {
	switch {
	case errors.Is(err, sign.ErrNoSignature):
		return "no signature"
	case errors.Is(err, sign.ErrBadSignature):
		return "signature does not match the file or the keys"
	case errors.Is(err, sign.ErrUnknownKey):
		return "no trusted key"
	default:
		return err.Error()
	}
}
