package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/ota/sign"
)

func newKeysCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("keys", "Manage ed25519 signing keys",
		`Manage the ed25519 keys that sign recipes and fleet jobs. Agents trust the
public keys listed in trust.keys of agent.toml.`,
		`  keystonectl keys generate --out ops`)
	cmd.AddCommand(newKeysGenerateCmd(opts))
	return cmd
}

// keyPairResult is what keys generate reports.
type keyPairResult struct {
	KeyID      string `json:"key_id"`
	PrivateKey string `json:"private_key"`
	PublicKey  string `json:"public_key"`
}

func newKeysGenerateCmd(opts *options) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "generate --out NAME",
		Short: "Generate an ed25519 key pair",
		Long: `Generate a new ed25519 key pair and write NAME.key (the private key, PEM
PKCS#8, mode 0600) and NAME.pub (the public key, PEM PKIX, mode 0644).
Existing files are never replaced. The key ID printed is the first 16 hex
characters of the SHA-256 of the raw public key, as named in job signatures.

Keep NAME.key secret; copy NAME.pub to each device and list it in trust.keys.

Exit codes:
  0  both files were written
  1  they could not be written (for example one of them exists already)
  2  usage error`,
		Example: `  keystonectl keys generate --out /secure/ops
  keystonectl -o json keys generate --out ci-signer`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return flagErrorf(cmd, "--out NAME is required")
			}
			if strings.HasSuffix(out, ".key") || strings.HasSuffix(out, ".pub") {
				return flagErrorf(cmd, "--out takes NAME without .key or .pub (it writes NAME.key and NAME.pub), got %q", out)
			}
			pub, priv, err := sign.GenerateKey(nil)
			if err != nil {
				return err
			}
			keyPath, pubPath, err := sign.WriteKeyPair(out, pub, priv)
			if err != nil {
				return err
			}
			res := keyPairResult{KeyID: sign.KeyID(pub), PrivateKey: keyPath, PublicKey: pubPath}
			return opts.render(res, table{
				header: []string{"KEY ID", "PRIVATE KEY", "PUBLIC KEY"},
				rows:   [][]string{{res.KeyID, res.PrivateKey, res.PublicKey}},
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write `NAME`.key and NAME.pub (required)")
	return cmd
}
