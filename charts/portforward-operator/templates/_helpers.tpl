{{/* The name of most objects: portforward-operator unless overridden. */}}
{{- define "pfo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- default .Chart.Name .Values.nameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pfo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The admission policy's name: portforward-requester-may-port-forward for the default fullname. */}}
{{- define "pfo.policyName" -}}
{{- printf "%s-requester-may-port-forward" (include "pfo.fullname" . | trimSuffix "-operator") -}}
{{- end -}}

{{/* The leader-election Lease: the operator's default name, with the class appended (see --class). */}}
{{- define "pfo.leaseName" -}}
{{- if .Values.className -}}portforward-operator-leader-{{ .Values.className }}{{- else -}}portforward-operator-leader{{- end -}}
{{- end -}}

{{/* Labels of every object: deploy/'s, plus the ones Helm charts carry (instance, version, chart, managed-by). */}}
{{- define "pfo.labels" -}}
app.kubernetes.io/name: {{ include "pfo.name" . }}
app.kubernetes.io/part-of: portforward-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The operator's pods; the selector is deploy/'s, so an install moves from kustomize to Helm in place. */}}
{{- define "pfo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pfo.name" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "pfo.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}
