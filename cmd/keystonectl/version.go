package main

import (
	"runtime"

	"github.com/spf13/cobra"
)

// Set at build time (see the Makefile's build target):
//
//	-ldflags "-X main.version=1.2.0 -X main.commit=abc1234 -X main.date=2026-11-25T10:00:00Z"
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

// versionResult is what version prints with -o json.
type versionResult struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"build_date"`
	Go        string `json:"go"`
	Platform  string `json:"platform"`
}

func newVersionCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print keystonectl's version, commit and build date",
		Long: `Print the version of this keystonectl, the commit it was built from, when
it was built, and the Go release and platform. A build outside the
Makefile says dev and unknown.

Exit codes:
  0  always, but for a usage error (2)`,
		Example: `  keystonectl version
  keystonectl -o json version`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			v := versionResult{Version: version, Commit: commit, BuildDate: date, Go: runtime.Version(),
				Platform: runtime.GOOS + "/" + runtime.GOARCH}
			return opts.render(v, table{rows: [][]string{
				{"version:", v.Version}, {"commit:", v.Commit}, {"built:", v.BuildDate}, {"go:", v.Go + " " + v.Platform},
			}})
		},
	}
}

func newCompletionCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the completion script for bash, zsh or fish on stdout: commands,
flags and their values complete with Tab. The script asks keystonectl
itself what completes, so it stays right across upgrades.

  bash: keystonectl completion bash > /etc/bash_completion.d/keystonectl
        (needs the bash-completion package), or in ~/.bashrc:
        source <(keystonectl completion bash)
  zsh:  keystonectl completion zsh > "${fpath[1]}/_keystonectl"
        (with compinit enabled in ~/.zshrc)
  fish: keystonectl completion fish > ~/.config/fish/completions/keystonectl.fish

Exit codes:
  0  the script was printed
  2  usage error (no shell, or one not listed)`,
		Example: `  keystonectl completion bash > /etc/bash_completion.d/keystonectl
  keystonectl completion fish > ~/.config/fish/completions/keystonectl.fish`,
		Args:      completionArgs,
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(opts.Out, true)
			case "zsh":
				return root.GenZshCompletion(opts.Out)
			default:
				return root.GenFishCompletion(opts.Out, true)
			}
		},
	}
}

// completionArgs accepts exactly one of the shells.
func completionArgs(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return flagErrorf(cmd, "%s takes one argument: bash, zsh or fish", cmd.CommandPath())
	}
	switch args[0] {
	case "bash", "zsh", "fish":
		return nil
	}
	return flagErrorf(cmd, "unknown shell %q: want bash, zsh or fish", args[0])
}
