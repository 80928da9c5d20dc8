package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keystone-edge/keystone/ota/tufrepo"
)

func newRepoCmd(opts *options) *cobra.Command {
	cmd := newGroupCmd("repo", "Create and publish a signed component repository",
		`Maintain a component repository: TUF metadata (root, targets, snapshot,
timestamp) signed with ed25519 keys, plus recipes, artifacts and agent
releases, in a folder any static HTTP server can serve. Devices trust it
through trust.tuf_root (a copy of DIR/repository/root.json) and fetch from
trust.repository (the URL where DIR/repository is served). Private keys
stay in DIR/keys.`,
		`  keystonectl repo init ./repo
  keystonectl repo add ./repo --recipe hello.recipe.toml --artifact hello.tar.gz
  keystonectl repo add ./repo --agent-release 1.4.0 --agent dist/linux-arm64/keystone-agent
  keystonectl repo publish ./repo`)
	cmd.AddCommand(newRepoInitCmd(opts), newRepoAddCmd(opts), newRepoPublishCmd(opts), newRepoRotateKeyCmd(opts))
	return cmd
}

// oneDir accepts exactly one positional argument, the repository folder.
func oneDir(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return flagErrorf(cmd, "%s takes one argument: DIR, the repository folder", cmd.CommandPath())
	}
	return nil
}

// repoInitResult is what repo init reports.
type repoInitResult struct {
	Dir   string `json:"dir"`
	Serve string `json:"serve"` // the folder to serve over HTTP
	Root  string `json:"root"`  // the trust anchor to install as trust.tuf_root
	Keys  string `json:"keys"`  // the private keys, never to be served
}

func newRepoInitCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "init DIR",
		Short: "Create a new repository with fresh keys",
		Long: `Create a repository in DIR: ed25519 keys for the root, targets, snapshot
and timestamp roles in DIR/keys (mode 0600, folder 0700, never served),
root metadata valid for a year, and empty targets (90 days), snapshot
(7 days) and timestamp (1 day) metadata in DIR/repository, ready to serve.

Copy DIR/repository/root.json to each device as trust.tuf_root. Keep
DIR/keys off the web server; move the root key offline once set up.

Exit codes:
  0  the repository was created
  1  DIR already holds a repository, or it could not be written
  2  usage error`,
		Example: `  keystonectl repo init ./repo
  keystonectl -o json repo init /srv/keystone-repo`,
		Args: oneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := tufrepo.Init(dir, tufrepo.Options{}); err != nil {
				return err
			}
			res := repoInitResult{Dir: dir, Serve: tufrepo.ServedDir(dir), Root: tufrepo.RootFile(dir),
				Keys: filepath.Join(dir, "keys")}
			return opts.render(res, table{
				header: []string{"SERVE", "TRUST ROOT", "KEYS"},
				rows:   [][]string{{res.Serve, res.Root, res.Keys}},
			})
		},
	}
}

// repoAddResult is what repo add reports for a component version.
type repoAddResult struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Targets []string `json:"targets"`
}

// repoAddReleaseResult is what repo add --agent-release reports.
type repoAddReleaseResult struct {
	Version string   `json:"version"`
	OS      string   `json:"os"`
	Arch    string   `json:"arch"`
	Target  string   `json:"target"`
	Files   []string `json:"files"`
	Length  int64    `json:"length"`
	SHA256  string   `json:"sha256"`
}

// repoAddFlags are the flags of repo add: a component version
// (--recipe, --artifact) or an agent release (the others).
type repoAddFlags struct {
	recipe    string
	artifacts []string
	release   string
	agent     string
	shim      string
	goos      string
	goarch    string
}

// check refuses flag combinations that mix the two forms or leave one
// incomplete.
func (f *repoAddFlags) check(cmd *cobra.Command) error {
	changed := func(names ...string) []string {
		var out []string
		for _, n := range names {
			if cmd.Flags().Changed(n) {
				out = append(out, "--"+n)
			}
		}
		return out
	}
	releaseOnly := changed("agent", "shim", "os", "arch")
	switch {
	case f.recipe != "" && f.release != "":
		return flagErrorf(cmd, "--recipe and --agent-release cannot be combined: stage a component version and an agent release with two commands")
	case f.release == "" && len(releaseOnly) > 0:
		return flagErrorf(cmd, "%s go with --agent-release VERSION", strings.Join(releaseOnly, ", "))
	case f.release != "" && len(f.artifacts) > 0:
		return flagErrorf(cmd, "--artifact goes with --recipe; an agent release takes --agent FILE [--shim FILE]")
	case f.release == "" && f.recipe == "":
		return flagErrorf(cmd, "--recipe R is required (or --agent-release VERSION --agent FILE for an agent release)")
	case f.release == "":
		return nil
	case f.agent == "":
		return flagErrorf(cmd, "--agent FILE is required with --agent-release")
	}
	if err := tufrepo.CheckVersion(f.release); err != nil {
		return flagErrorf(cmd, "--agent-release: %v", err)
	}
	if f.goos != "" && f.goos != "linux" {
		return flagErrorf(cmd, "--os must be linux: keystone-agent runs on linux only, got %q", f.goos)
	}
	if f.goarch != "" && !slices.Contains(tufrepo.ReleaseArches, f.goarch) {
		return flagErrorf(cmd, "--arch must be one of %s, got %q", strings.Join(tufrepo.ReleaseArches, ", "), f.goarch)
	}
	return nil
}

func newRepoAddCmd(opts *options) *cobra.Command {
	var f repoAddFlags
	cmd := &cobra.Command{
		Use:   "add DIR {--recipe R [--artifact A...] | --agent-release VERSION --agent FILE [--shim FILE]}",
		Short: "Stage a component version, or an agent release",
		Long: `Stage the component version described by recipe R in repository DIR. The
recipe becomes target <name>/<version>/component.recipe.toml and each
artifact A becomes <name>/<version>/<file name of A>, copied into the
served folder. The recipe must reference each artifact as
uri = "repo:<name>/<version>/<file>" with its sha256, and every given
artifact must be referenced. A version already published with other bytes
is refused: versions are immutable. Devices see the change after
"repo publish".

With --agent-release VERSION, stage instead a release of keystone-agent
itself, which devices install when an agent_update job ("keystonectl fleet
agent-update") names VERSION: the binary FILE given by --agent, and the
keystone-shim given by --shim if any, become the archive target
keystone-agent/<VERSION>/<os>-<arch>. Each binary must be an ELF executable
for linux; its architecture is read from the ELF header of --agent, and
--os/--arch, when given, must agree with it. Anything else (a script, a
Windows or macOS build, a binary for another architecture) is refused: a
device that installed it could not start its agent. Run the command once
per architecture.

Exit codes:
  0  the version or release was staged
  1  the recipe and artifacts disagree, a binary is not an executable for
     the release's platform, or DIR could not be updated
  2  usage error`,
		Example: `  keystonectl repo add ./repo --recipe hello.recipe.toml --artifact hello-1.2.0.tar.gz
  keystonectl repo add ./repo --recipe plugin.recipe.toml --artifact collect.wasm --artifact README
  keystonectl repo add ./repo --agent-release 1.4.0 --agent dist/linux-arm64/keystone-agent
  keystonectl repo add ./repo --agent-release 1.4.0 --agent dist/keystone-agent --shim dist/keystone-shim --arch amd64`,
		Args: oneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			if f.release != "" {
				return addRelease(opts, args[0], &f)
			}
			added, err := tufrepo.Add(args[0], f.recipe, f.artifacts, tufrepo.Options{})
			if err != nil {
				return err
			}
			res := repoAddResult{Name: added.Name, Version: added.Version, Targets: added.Targets}
			t := table{header: []string{"TARGET"}}
			for _, target := range res.Targets {
				t.rows = append(t.rows, []string{target})
			}
			return opts.render(res, t)
		},
	}
	cmd.Flags().StringVar(&f.recipe, "recipe", "", "recipe `FILE` to stage")
	cmd.Flags().StringArrayVar(&f.artifacts, "artifact", nil, "artifact `FILE` the recipe references (repeatable)")
	cmd.Flags().StringVar(&f.release, "agent-release", "", "stage an agent release of `VERSION` (a semantic version such as 1.4.0) instead of a component")
	cmd.Flags().StringVar(&f.agent, "agent", "", "keystone-agent binary `FILE` of the release (required with --agent-release)")
	cmd.Flags().StringVar(&f.shim, "shim", "", "keystone-shim binary `FILE` of the release (default none: the agent runs itself as the shim)")
	cmd.Flags().StringVar(&f.goos, "os", "", "`OS` the binaries run on, only linux (default read from the ELF header of --agent)")
	cmd.Flags().StringVar(&f.goarch, "arch", "", "`ARCH` the binaries run on: "+strings.Join(tufrepo.ReleaseArches, ", ")+" (default read from the ELF header of --agent)")
	return cmd
}

func addRelease(opts *options, dir string, f *repoAddFlags) error {
	added, err := tufrepo.AddRelease(dir, tufrepo.Release{Version: f.release, OS: f.goos, Arch: f.goarch,
		Agent: f.agent, Shim: f.shim}, tufrepo.Options{})
	if err != nil {
		return err
	}
	res := repoAddReleaseResult(added)
	return opts.render(res, table{
		header: []string{"TARGET", "FILES", "SIZE", "SHA256"},
		rows:   [][]string{{res.Target, strings.Join(res.Files, ","), bytesIEC(uint64(res.Length)), res.SHA256}},
	})
}

// repoPublishResult is what repo publish reports: metadata versions now served.
type repoPublishResult struct {
	Root      int64 `json:"root"`
	Targets   int64 `json:"targets"`
	Snapshot  int64 `json:"snapshot"`
	Timestamp int64 `json:"timestamp"`
}

func newRepoPublishCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "publish DIR",
		Short: "Sign staged changes and a fresh snapshot and timestamp",
		Long: `Publish repository DIR: sign the staged targets (when "repo add" changed
them, or when less than half of their 90 days is left), then a new snapshot
and timestamp with fresh expiries. Devices refuse timestamp metadata older
than a day (METADATA_EXPIRED), so run publish at least daily, for example
from a timer, even when nothing changed.

Exit codes:
  0  new metadata is being served
  1  DIR is not a repository or could not be signed
  2  usage error`,
		Example: `  keystonectl repo publish ./repo
  keystonectl -o json repo publish /srv/keystone-repo`,
		Args: oneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := tufrepo.Publish(args[0], tufrepo.Options{})
			if err != nil {
				return err
			}
			res := repoPublishResult(p)
			return opts.render(res, table{
				header: []string{"ROOT", "TARGETS", "SNAPSHOT", "TIMESTAMP"},
				rows: [][]string{{strconv.FormatInt(res.Root, 10), strconv.FormatInt(res.Targets, 10),
					strconv.FormatInt(res.Snapshot, 10), strconv.FormatInt(res.Timestamp, 10)}},
			})
		},
	}
}

// repoRotateResult is what repo rotate-key reports.
type repoRotateResult struct {
	Role        string   `json:"role"`
	OldKeyIDs   []string `json:"old_key_ids"`
	NewKeyID    string   `json:"new_key_id"`
	RootVersion int64    `json:"root_version"`
}

func newRepoRotateKeyCmd(opts *options) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "rotate-key DIR --role ROLE",
		Short: "Replace a role's signing key",
		Long: `Replace the key of ROLE (root, targets, snapshot or timestamp) in repository
DIR with a fresh ed25519 key: a new root version trusting only the new key
is signed by the current root key (and by the new one when ROLE is root),
then the metadata of the role is republished under it. Devices follow the
chain of roots from the one they were enrolled with; trust.tuf_root need
not change. The old key moves to DIR/keys/retired.

Exit codes:
  0  the key was rotated and new metadata is being served
  1  DIR is not a repository or could not be updated
  2  usage error`,
		Example: `  keystonectl repo rotate-key ./repo --role timestamp
  keystonectl repo rotate-key ./repo --role root`,
		Args: oneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch role {
			case "":
				return flagErrorf(cmd, "--role ROLE is required (one of %s)", strings.Join(tufrepo.Roles, ", "))
			case tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleSnapshot, tufrepo.RoleTimestamp:
			default:
				return flagErrorf(cmd, "--role must be one of %s, got %q", strings.Join(tufrepo.Roles, ", "), role)
			}
			rot, err := tufrepo.RotateKey(args[0], role, tufrepo.Options{})
			if err != nil {
				return err
			}
			res := repoRotateResult(rot)
			return opts.render(res, table{
				header: []string{"ROLE", "NEW KEY ID", "ROOT VERSION"},
				rows:   [][]string{{res.Role, res.NewKeyID, fmt.Sprint(res.RootVersion)}},
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "`ROLE` whose key to replace: root, targets, snapshot or timestamp (required)")
	return cmd
}
