{{/* Name of the chart, overridable with nameOverride. */}}
{{- define "podtrace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: the release name when it already contains the chart name, so that
`helm install podtrace ...` gives the same object names as config/ (kustomize).
*/}}
{{- define "podtrace.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades, so never the chart version. */}}
{{- define "podtrace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podtrace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "podtrace.labels" -}}
{{ include "podtrace.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "podtrace.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podtrace.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "podtrace.leaseName" -}}
{{- default (printf "%s-controller" (include "podtrace.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The read rules, shared by the cluster-wide ClusterRole and the namespace-scoped Role so
both modes grant exactly the same verbs. Kept identical to config/rbac/cluster_role.yaml;
tests/chart_manifests.rs compares them rule for rule.
*/}}
{{- define "podtrace.namespacedReadRules" -}}
- apiGroups: [""]
  resources: [pods, events]
  verbs: [get, list, watch]
# The scheduler writes its events through events.k8s.io/v1.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [get, list, watch]
- apiGroups: [podtrace.dev]
  resources: [tracesessions]
  verbs: [get, list, watch]
# Status only: podtrace never edits the spec users wrote.
- apiGroups: [podtrace.dev]
  resources: [tracesessions/status]
  verbs: [get, patch, update]
{{- end }}

{{- define "podtrace.nodeReadRules" -}}
# A pod's node is the kubelet spans' resource; Nodes are cluster-scoped.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
{{- end }}
