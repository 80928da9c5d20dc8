package main

import "testing"

func TestDetectKind(t *testing.T) {
	manifestBody := []byte("format = 1\n\n  [ deployment ]  # the rollout\nid = \"r\"\n")
	cases := []struct {
		path string
		data string
		want fileKind
	}{
		{"hello.recipe.toml", "[deployment]\n", kindRecipe}, // the name wins
		{"deployment.toml", "[metadata]\n", kindManifest},
		{"prod/canary.deployment.toml", "", kindManifest},
		{"rollout.toml", string(manifestBody), kindManifest},
		{"rollout.toml", "format = 1\n[metadata]\nname = \"x\"\n", kindRecipe},
		{"x.toml", "[deployment.extra]\n", kindRecipe},
		{"x.toml", "[[deployment]]\n", kindRecipe},
		{"x.toml", "# [deployment]\n", kindRecipe},
		{"x.toml", "description = \"see [deployment]\"\n", kindRecipe},
		{"x.toml", "", kindRecipe},
	}
	for _, tc := range cases {
		if got := detectKind(tc.path, []byte(tc.data)); got != tc.want {
			t.Errorf("detectKind(%q, %q) = %s, want %s", tc.path, tc.data, got, tc.want)
		}
	}
}
