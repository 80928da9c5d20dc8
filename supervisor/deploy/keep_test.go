package deploy

import (
	"reflect"
	"testing"
)

func TestVersionsToKeep(t *testing.T) {
	tests := []struct {
		name    string
		history []map[string]string
		keep    int
		want    map[string][]string
	}{
		{
			name:    "current only",
			history: []map[string]string{{"a": "1.0.0"}},
			keep:    2,
			want:    map[string][]string{"a": {"1.0.0"}},
		},
		{
			name: "current plus the previous one, the oldest goes",
			history: []map[string]string{
				{"a": "3.0.0", "b": "1.0.0"},
				{"a": "2.0.0", "b": "1.0.0"},
				{"a": "1.0.0", "b": "1.0.0"},
			},
			keep: 2,
			want: map[string][]string{"a": {"3.0.0", "2.0.0"}, "b": {"1.0.0"}},
		},
		{
			name: "keep 1 keeps the current version only",
			history: []map[string]string{
				{"a": "3.0.0"},
				{"a": "2.0.0"},
			},
			keep: 1,
			want: map[string][]string{"a": {"3.0.0"}},
		},
		{
			name: "a removed component keeps keep-1 versions",
			history: []map[string]string{
				{"a": "1.0.0"},
				{"a": "1.0.0", "gone": "2.0.0"},
				{"gone": "1.0.0"},
			},
			keep: 3,
			want: map[string][]string{"a": {"1.0.0"}, "gone": {"2.0.0", "1.0.0"}},
		},
		{
			name: "a removed component with keep 1 keeps nothing",
			history: []map[string]string{
				{"a": "1.0.0"},
				{"gone": "1.0.0"},
			},
			keep: 1,
			want: map[string][]string{"a": {"1.0.0"}},
		},
		{
			name: "a rollback to an older version keeps it current",
			history: []map[string]string{
				{"a": "1.0.0"},
				{"a": "2.0.0"},
				{"a": "1.0.0"},
			},
			keep: 2,
			want: map[string][]string{"a": {"1.0.0", "2.0.0"}},
		},
		{
			name:    "keep 0 counts as 1",
			history: []map[string]string{{"a": "2.0.0"}, {"a": "1.0.0"}},
			keep:    0,
			want:    map[string][]string{"a": {"2.0.0"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionsToKeep(tt.history, tt.keep); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("versionsToKeep = %v, want %v", got, tt.want)
			}
		})
	}
}
