package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/ota/sign"
	"github.com/keystone-edge/keystone/recipes"
)

func newRecipeCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("recipe", "Validate, sign and verify component recipes",
		`Validate component recipes and deployment manifests, and sign recipes or
check their detached signatures (<file>.sig) with ed25519 keys.`,
		`  keystonectl recipe sign --key ops.key hello.recipe.toml
  keystonectl recipe verify --pub ops.pub hello.recipe.toml`)
	cmd.AddCommand(newRecipeValidateCmd(opts))
	cmd.AddCommand(newRecipeSignCmd(opts))
	cmd.AddCommand(newRecipeVerifyCmd(opts))
	return cmd
}

// validateError is one problem recipe validate found, as printed with -o json.
type validateError struct {
	File    string `json:"file"`
	Line    int    `json:"line"` // 0 = unknown
	Col     int    `json:"col"`  // 0 = unknown
	Path    string `json:"path"` // field path; "" for a syntax or read error
	Message string `json:"message"`
}

func newRecipeValidateCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check recipes and deployment manifests",
		Long: `Parse and check each FILE as the agent would, and report every problem
found, one per line:

  FILE:LINE:COL: FIELD.PATH: MESSAGE

With -o json the problems are a JSON list of {file, line, col, path,
message} (line and col 0 when unknown); an empty list means all is well.
When every FILE is valid, the table lists each one's kind and what it holds.

A FILE named *.recipe.toml is a recipe; one named deployment.toml or
*.deployment.toml is a deployment manifest; any other FILE is a manifest if
it has a [deployment] table, and a recipe otherwise. A recipe's imports are
read relative to it and checked with it. A manifest is checked with every
local recipe it names (components[].recipe, relative to the manifest): each
recipe as above, that it is the component and version listed, and that each
[components.config] override is a key of the recipe's config.defaults with
the default's type. Components from the repository, the device's own config
and signatures are left to the agent (see recipe verify for signatures).

Exit codes:
  0  every FILE is valid
  1  at least one problem was found (listed on stdout)
  2  usage error`,
		Example: `  keystonectl recipe validate hello.recipe.toml
  keystonectl recipe validate recipes/*.recipe.toml deployment.toml
  keystonectl -o json recipe validate hello.recipe.toml`,
		Args: minArgs(1, "FILE..."),
		RunE: func(cmd *cobra.Command, files []string) error {
			problems := []validateError{}
			valid := table{header: []string{"FILE", "KIND", "SUMMARY"}}
			badFiles := 0
			for _, file := range files {
				row, errs := validateFile(file)
				if len(errs) > 0 {
					badFiles++
					problems = append(problems, errs...)
					continue
				}
				valid.rows = append(valid.rows, row)
			}
			t := valid
			if len(problems) > 0 {
				t = table{}
				for _, p := range problems {
					fe := recipes.FieldError{File: p.File, Line: p.Line, Col: p.Col, Path: p.Path, Message: p.Message}
					t.rows = append(t.rows, []string{fe.Error()})
				}
			}
			if err := opts.render(problems, t); err != nil {
				return err
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d problem(s) in %d of %d file(s)", len(problems), badFiles, len(files))
			}
			return nil
		},
	}
}

// validateFile parses one file and returns its table row when it is valid,
// or every problem found in it.
func validateFile(path string) (row []string, problems []validateError) {
	data, err := readInputFile(path)
	if err != nil {
		return nil, []validateError{{File: path, Message: err.Error()}}
	}
	kind := detectKind(path, data)
	switch kind {
	case kindManifest:
		m, err := recipes.ParseManifest(path, data)
		if err != nil {
			return nil, fieldErrors(path, err)
		}
		if problems := validateManifestRecipes(m); len(problems) > 0 {
			return nil, problems
		}
		summary := fmt.Sprintf("%d component(s)", len(m.Components))
		if m.Deployment.ID != "" {
			summary = "id " + m.Deployment.ID + ", " + summary
		}
		return []string{path, string(kind), summary}, nil
	default:
		r, err := recipes.ParseRecipe(path, data)
		if err != nil {
			return nil, fieldErrors(path, err)
		}
		return []string{path, string(kind), fmt.Sprintf("%s %s (%s)", r.Metadata.Name, r.Metadata.Version, r.Metadata.Kind)}, nil
	}
}

// validateManifestRecipes checks what a manifest brings along, as the
// agent would: each local recipe it names (with its imports), that the
// recipe is the component and version listed, and each component's config
// overrides against that recipe's defaults. Components from the repository
// are left to the agent.
func validateManifestRecipes(m *recipes.Manifest) []validateError {
	var problems []validateError
	for i, ref := range m.Components {
		if ref.Recipe == "" {
			continue
		}
		path := filepath.Join(filepath.Dir(m.Source), filepath.FromSlash(ref.Recipe))
		r, err := recipes.ParseRecipeFile(path)
		if err != nil {
			problems = append(problems, fieldErrors(path, err)...)
			continue
		}
		if r.Metadata.Name != ref.Name || r.Metadata.Version != ref.Version {
			field := fmt.Sprintf("components[%d].recipe", i)
			line, col := m.Locate(field)
			problems = append(problems, validateError{File: m.Source, Line: line, Col: col, Path: field,
				Message: fmt.Sprintf("%s is %s %s, but the manifest lists %s %s", ref.Recipe, r.Metadata.Name, r.Metadata.Version, ref.Name, ref.Version)})
			continue
		}
		if err := m.CheckConfig(i, r); err != nil {
			problems = append(problems, fieldErrors(m.Source, err)...)
		}
	}
	return problems
}

// fieldErrors turns a parser error into problems: each entry of a
// recipes.ErrorList, or the error itself attributed to path.
func fieldErrors(path string, err error) []validateError {
	var list recipes.ErrorList
	if !errors.As(err, &list) {
		return []validateError{{File: path, Message: err.Error()}}
	}
	out := make([]validateError, 0, len(list))
	for _, fe := range list {
		out = append(out, validateError{File: fe.File, Line: fe.Line, Col: fe.Col, Path: fe.Path, Message: fe.Message})
	}
	return out
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
