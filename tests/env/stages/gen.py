#!/usr/bin/env python3
"""Generates tests/env/stages/pod.yaml: KWOK Stages that make pods on fake nodes go
through the kubelet's startup sequence and write the kubelet's events.

Why generated: KWOK's own `event` step can only send a fixed reason/message with
source `kwok_controller` and no fieldPath. The `apply` step, however, creates any object
from a template, so each kubelet event is written as a core/v1 Event with
source.component=kubelet, source.host=<node> and involvedObject.fieldPath.

Containers start one at a time in spec order (init containers first, each running to
completion), as the kubelet does: every stage acts on one container, found from the
container statuses, and the stage that finishes one container also writes the Pulling
event of the next, so that event appears when the pull begins.

Run: python3 tests/env/stages/gen.py > tests/env/stages/pod.yaml
"""
import json
import sys

A = "podtrace.dev/testenv-"

# Go-template preamble shared by every template.
PRE = (
    '{{ $ann := or .metadata.annotations dict }}'
    '{{ $node := .spec.nodeName }}'
    '{{ $now := Now }}'
    '{{ $ts := dateInZone "2006-01-02T15:04:05Z" now "UTC" }}'
    f'{{{{ $pd := or (index $ann "{A}pull-duration") "800ms" }}}}'
    f'{{{{ $pullMode := or (index $ann "{A}image-pull") "pull" }}}}'
    f'{{{{ $cachedList := splitList "," (or (index $ann "{A}cached-images") "") }}}}'
)


# Template snippets that bind $grp (the spec field), $cs (its containers) and $i (the
# container index) for the container a stage acts on; finish() then binds $c and $cached.
BIND_FIRST = ('{{ $hasInit := not (empty .spec.initContainers) }}'
              '{{ $grp := ternary "initContainers" "containers" $hasInit }}'
              '{{ $cs := ternary .spec.initContainers .spec.containers $hasInit }}{{ $i := 0 }}')
BIND_C0 = '{{ $grp := "containers" }}{{ $cs := .spec.containers }}{{ $i := 0 }}'
# The kubelet runs init containers one after another: the first still waiting is next.
BIND_INIT_WAITING = ('{{ $grp := "initContainers" }}{{ $cs := .spec.initContainers }}{{ $i := -1 }}'
                     '{{ range $j, $x := .status.initContainerStatuses }}'
                     '{{ if and (lt $i 0) $x.state.waiting }}{{ $i = $j }}{{ end }}{{ end }}')
BIND_INIT_RUNNING = ('{{ $grp := "initContainers" }}{{ $cs := .spec.initContainers }}{{ $i := -1 }}'
                     '{{ range $j, $x := .status.initContainerStatuses }}'
                     '{{ if and (lt $i 0) $x.state.running }}{{ $i = $j }}{{ end }}{{ end }}')
# App containers are also started in spec order, each pulled just before it is created.
BIND_APP_CREATING = ('{{ $grp := "containers" }}{{ $cs := .spec.containers }}{{ $i := -1 }}'
                     '{{ range $j, $x := .status.containerStatuses }}{{ if lt $i 0 }}{{ if $x.state.waiting }}'
                     '{{ if eq $x.state.waiting.reason "ContainerCreating" }}{{ $i = $j }}{{ end }}{{ end }}{{ end }}{{ end }}')


def finish():
    return ('{{ $c := index $cs $i }}'
            '{{ $cached := or (eq $pullMode "cached") (has $c.image $cachedList) }}')


def next_after(bind_current, init_to_app):
    """Binds the container that comes after the current one. When there is none, $noop is
    true and $c stays the current container, so the caller can re-render an event it just
    wrote (an identical write is a no-op)."""
    s = bind_current + '{{ $noop := false }}'
    if init_to_app:
        s += ('{{ if lt (add1 $i) (len $cs) }}{{ $i = add1 $i }}'
              '{{ else }}{{ $grp = "containers" }}{{ $cs = $.spec.containers }}{{ $i = 0 }}{{ end }}')
    else:
        s += '{{ if lt (add1 $i) (len $cs) }}{{ $i = add1 $i }}{{ else }}{{ $noop = true }}{{ end }}'
    return s


def event(bind, key, reason, etype, message, count="1"):
    """An Event template; key names the event so repeats aggregate like the kubelet's."""
    return PRE + bind + finish() + f"""
{{{{ $count := {count} }}}}
apiVersion: v1
kind: Event
metadata:
  name: {{{{ printf "%s.%s" .metadata.name (printf "%s/%s/%s" .metadata.uid {key} $c.name | sha256sum | trunc 16) | Quote }}}}
  namespace: {{{{ .metadata.namespace | Quote }}}}
involvedObject:
  apiVersion: v1
  kind: Pod
  name: {{{{ .metadata.name | Quote }}}}
  namespace: {{{{ .metadata.namespace | Quote }}}}
  uid: {{{{ .metadata.uid | Quote }}}}
  fieldPath: {{{{ printf "spec.%s{{%s}}" $grp $c.name | Quote }}}}
reason: {{{{ {reason} | Quote }}}}
message: {{{{ {message} | Quote }}}}
type: {{{{ {etype} | Quote }}}}
source:
  component: kubelet
  host: {{{{ $node | Quote }}}}
reportingComponent: kubelet
reportingInstance: {{{{ $node | Quote }}}}
count: {{{{ $count }}}}
{{{{ if eq (int $count) 1 }}}}firstTimestamp: {{{{ $ts | Quote }}}}{{{{ end }}}}
lastTimestamp: {{{{ $ts | Quote }}}}
"""


PULLED_OK = ('printf "Successfully pulled image %q in %s (%s including waiting). Image size: %d bytes." '
             '$c.image $pd $pd (add 1000000 (mod (atoi (adler32sum $c.image)) 90000000))')
PRESENT = 'printf "Container image %q already present on machine" $c.image'
PULLING = 'printf "Pulling image %q" $c.image'
CREATED = 'printf "Created container: %s" $c.name'
STARTED = 'printf "Started container %s" $c.name'


def pull_begins(bind, noop=None):
    """What the kubelet says when it turns to a container's image: Pulling, or Pulled at
    once for an image already on the node. Written by the stage that ends right before the
    pull, so it appears when the pull begins. noop = (key, reason, type, message) to
    re-render when bind set $noop."""
    key, reason, etype, msg = ('(ternary "Pulled" "Pulling" $cached)', '(ternary "Pulled" "Pulling" $cached)',
                               '"Normal"', f'(ternary ({PRESENT}) ({PULLING}) $cached)')
    if noop:
        nk, nr, nt, nm = noop
        key, reason = f'(ternary {nk} {key} $noop)', f'(ternary {nr} {reason} $noop)'
        etype, msg = f'(ternary {nt} {etype} $noop)', f'(ternary ({nm}) ({msg}) $noop)'
    return apply(event(bind, key, reason, etype, msg))


def start_events(bind, count="1"):
    """Pulled (for an image that was pulled), Created, Started for one container."""
    if count == "1":
        # A cached image's Pulled event came when the pull would have begun: fill the slot
        # with the Created event (identical to the next step's, so one write is a no-op).
        evs = [event(bind, '(ternary "Created" "Pulled" $cached)', '(ternary "Created" "Pulled" $cached)',
                     '"Normal"', f'(ternary ({CREATED}) ({PULLED_OK}) $cached)')]
    else:
        # A restart finds the image present. That message differs from the first
        # "Successfully pulled", so the kubelet records it as a separate event.
        evs = [event(bind, '(ternary "Pulled" "Pulled-present" $cached)', '"Pulled"', '"Normal"', PRESENT,
                     count=f'(ternary {count} (sub {count} 1) $cached)')]
    evs.append(event(bind, '"Created"', '"Created"', '"Normal"', CREATED, count=count))
    evs.append(event(bind, '"Started"', '"Started"', '"Normal"', STARTED, count=count))
    return [apply(t) for t in evs]


def apply(tpl):
    return {"apply": {"type": "merge", "template": tpl}}


def patch_status(tpl):
    return {"patch": {"subresource": "status", "root": "status", "template": PRE + "\n" + tpl}}


def names(group):
    return f'[{{{{ range $j, $x := .spec.{group} }}}}{{{{ if $j }}}} {{{{ end }}}}{{{{ $x.name }}}}{{{{ end }}}}]'


def cstatus(group, state, ready="false", started="false", extra=""):
    return f"""{group[:-1]}Statuses:
{{{{ range $j, $x := .spec.{group} }}}}
- name: {{{{ $x.name | Quote }}}}
  image: {{{{ $x.image | Quote }}}}
  ready: {ready}
  started: {started}
  restartCount: 0
{extra}  state:
{state}
{{{{ end }}}}
"""


def cond(ctype, status, reason="", message=""):
    s = f"""- type: {ctype}
  status: "{status}"
  lastProbeTime: null
  lastTransitionTime: {{{{ $now | Quote }}}}
"""
    # The status patch is a strategic merge: a condition turning True must drop the
    # reason/message it had while False, as the kubelet's conditions do.
    s += f"  reason: {reason}\n" if reason else "  reason: null\n"
    s += f"  message: '{message}'\n" if message else "  message: null\n"
    return s


def not_ready(group="containers"):
    return (cond("Ready", "False", "ContainersNotReady", f"containers with unready status: {names(group)}")
            + cond("ContainersReady", "False", "ContainersNotReady", f"containers with unready status: {names(group)}"))


def sel(*exprs):
    out = [{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}]
    for e in exprs:
        out.append(e)
    return {"matchExpressions": out}


def ex(key, op, *values):
    d = {"key": key, "operator": op}
    if values:
        d["values"] = list(values)
    return d


def delay(ms, annotation=None, jitter=None):
    d = {"durationMilliseconds": ms}
    if annotation:
        d["durationFrom"] = {"expressionFrom": f'.metadata.annotations["{A}{annotation}"]'}
    if jitter:
        d["jitterDurationMilliseconds"] = jitter
    return d


def pull_delay(group, status_field, waiting_test):
    """The pull duration for the container a stage starts (the first whose status passes
    waiting_test), or 100 ms when its image is already on the node."""
    jq = ('(.metadata.annotations // {}) as $a'
          f' | ($a["{A}cached-images"] // "" | split(",")) as $c'
          f' | ([.status.{status_field}[] | {waiting_test}] | index(true)) as $k'
          f' | .spec.{group}[$k].image as $img'
          f' | if ($a["{A}image-pull"] == "cached") or any($c[]; . == $img)'
          f' then "100ms" else ($a["{A}pull-duration"] // "800ms") end')
    return {"durationMilliseconds": 800, "durationFrom": {"expressionFrom": jq}}


def statuses_with(field, bind, current):
    """A full {field} list: the bound container ($i) gets `current`, others are kept."""
    return (bind + f"""
{field}:
{{{{ range $j, $x := .status.{field} }}}}
{{{{ if eq $j $i }}}}
- name: {{{{ $x.name | Quote }}}}
  image: {{{{ $x.image | Quote }}}}
{current}
{{{{ else }}}}
- {{{{ $x | toJson }}}}
{{{{ end }}}}
{{{{ end }}}}
""")


def stage(name, selector, dly, steps, weight=None):
    spec = {"resourceRef": {"apiGroup": "v1", "kind": "Pod"}, "selector": selector}
    if dly:
        spec["delay"] = dly
    spec["steps"] = steps
    if weight:
        spec["weight"] = weight
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


PHASE_PENDING = ex(".status.phase", "In", "Pending")
INITIALIZED = ex('.status.conditions.[] | select( .type == "Initialized" ) | .status', "In", "True")
NOT_FAIL = ex(f'.metadata.annotations["{A}image-pull"]', "NotIn", "fail")
FAIL = ex(f'.metadata.annotations["{A}image-pull"]', "In", "fail")
CRASH = ex(f'.metadata.annotations["{A}crash"]', "In", "true")
C0 = ".status.containerStatuses.[0]"

stages = []

# 1. Sandbox created: IPs, PodReadyToStartContainers, containers waiting; the kubelet then
#    turns to the first image.
stages.append(stage("podtrace-pod-sandbox", sel(ex(".status.podIP", "DoesNotExist")),
                    delay(150, "sandbox-duration", 400), [pull_begins(BIND_FIRST), patch_status(
    "conditions:\n" + cond("PodReadyToStartContainers", "True")
    + '{{ if .spec.initContainers }}'
    + cond("Initialized", "False", "ContainersNotInitialized", f"containers with incomplete status: {names('initContainers')}")
    + '{{ else }}' + cond("Initialized", "True") + '{{ end }}'
    + not_ready()
    + '{{ if .spec.initContainers }}'
    + cstatus("initContainers", "    waiting:\n      reason: PodInitializing")
    + cstatus("containers", "    waiting:\n      reason: PodInitializing")
    + '{{ else }}'
    + cstatus("containers", "    waiting:\n      reason: ContainerCreating")
    + '{{ end }}'
    + """hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
hostIPs:
- ip: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Pending
startTime: {{ $now | Quote }}
""")]))

RUNNING_STATE = """  ready: false
  started: true
  restartCount: 0
  imageID: {{ printf "%s@sha256:%s" $x.image (sha256sum $x.image) | Quote }}
  containerID: {{ printf "containerd://%s" (sha256sum (printf "%s/%s/0" $.metadata.uid $x.name)) | Quote }}
  state:
    running:
      startedAt: {{ $now | Quote }}"""

# 2. The next init container (one at a time) is pulled, created and started.
stages.append(stage("podtrace-pod-init-start", sel(
    ex(".status.podIP", "Exists"), PHASE_PENDING,
    ex('.status.conditions.[] | select( .type == "Initialized" ) | .status', "NotIn", "True"),
    ex(".status.initContainerStatuses.[].state.waiting.reason", "Exists"),
    ex(".status.initContainerStatuses.[].state.running.startedAt", "DoesNotExist")),
    pull_delay("initContainers", "initContainerStatuses", ".state.waiting != null"),
    start_events(BIND_INIT_WAITING) + [patch_status(statuses_with("initContainerStatuses", BIND_INIT_WAITING, RUNNING_STATE))]))

# 3. The running init container exits 0. The kubelet turns to the next image: the next init
#    container's, or after the last one, the first app container's.
stages.append(stage("podtrace-pod-init-done", sel(
    PHASE_PENDING, ex(".status.initContainerStatuses.[].state.running.startedAt", "Exists")),
    delay(500, "init-duration"),
    [pull_begins(next_after(BIND_INIT_RUNNING, init_to_app=True)), patch_status(
        statuses_with("initContainerStatuses", BIND_INIT_RUNNING, """  ready: true
  started: false
  restartCount: 0
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ $x.containerID | Quote }}
  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{ $x.state.running.startedAt | Quote }}
      finishedAt: {{ $now | Quote }}""")
        + "{{ if eq (add1 $i) (len .spec.initContainers) }}\nconditions:\n" + cond("Initialized", "True")
        + cstatus("containers", "    waiting:\n      reason: ContainerCreating") + "{{ end }}\n")]))

# 4. The next app container (spec order) is pulled, created and started; the kubelet then
#    turns to the following one. The phase is Running once every container runs.
APP_LEFT = ('{{ $left := list }}{{ range $j, $x := .status.containerStatuses }}'
            '{{ if and (ne $j $i) (not $x.state.running) }}{{ $left = append $left $j }}{{ end }}{{ end }}')
stages.append(stage("podtrace-pod-start", sel(
    INITIALIZED,
    ex(".status.containerStatuses.[].state.waiting.reason", "In", "ContainerCreating"),
    # A pod whose first image fails to pull is handled by podtrace-pod-pull-fail first.
    ex(f'(.metadata.annotations["{A}image-pull"] != "fail") or ({C0}.state.waiting.reason != "ContainerCreating")', "In", "true")),
    pull_delay("containers", "containerStatuses", '.state.waiting.reason == "ContainerCreating"'),
    start_events(BIND_APP_CREATING)
    + [pull_begins(next_after(BIND_APP_CREATING, init_to_app=False), noop=('"Started"', '"Started"', '"Normal"', STARTED)),
       patch_status(statuses_with("containerStatuses", BIND_APP_CREATING, RUNNING_STATE)
                    + APP_LEFT + "\nphase: {{ ternary \"Running\" \"Pending\" (empty $left) }}\n")]))

# 5. Readiness: all containers ready.
stages.append(stage("podtrace-pod-ready", sel(
    ex(".status.phase", "In", "Running"),
    ex('.status.conditions.[] | select( .type == "ContainersReady" ) | .status', "In", "False"),
    ex('[.status.containerStatuses.[] | .state.running != null] | all', "In", "true")),
    delay(300, "ready-delay"), [patch_status(
        "conditions:\n" + cond("ContainersReady", "True") + cond("Ready", "True")
        + """containerStatuses:
{{ range $j, $x := .status.containerStatuses }}
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ $x.containerID | Quote }}
  ready: true
  started: true
  restartCount: {{ $x.restartCount }}
  state: {{ $x.state | toJson }}
{{ if $x.lastState }}  lastState: {{ $x.lastState | toJson }}{{ end }}
{{ end }}
""")]))

# 6. Crash loop: the first container exits 1 a while after it became ready.
C0_REST = """{{ range $j, $x := .status.containerStatuses }}{{ if $j }}
- {{ $x | toJson }}{{ end }}{{ end }}
"""
stages.append(stage("podtrace-pod-crash", sel(
    CRASH, ex(".status.phase", "In", "Running"),
    ex('.status.conditions.[] | select( .type == "Ready" ) | .status', "In", "True"),
    ex(f"{C0}.state.running.startedAt", "Exists")),
    delay(1000, "crash-after"), [patch_status(
        "conditions:\n" + cond("ContainersReady", "False", "ContainersNotReady", "containers with unready status: [{{ (index .spec.containers 0).name }}]")
        + cond("Ready", "False", "ContainersNotReady", "containers with unready status: [{{ (index .spec.containers 0).name }}]")
        + """{{ $x := index .status.containerStatuses 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ $x.containerID | Quote }}
  ready: false
  started: false
  restartCount: {{ $x.restartCount }}
{{ if $x.lastState }}  lastState: {{ $x.lastState | toJson }}{{ end }}
  state:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $x.state.running.startedAt | Quote }}
      finishedAt: {{ $now | Quote }}
      containerID: {{ $x.containerID | Quote }}
""" + C0_REST)], weight=None))

# 7. Crash loop: back-off (restartCount counts the exits so far, as the kubelet reports it).
BACKOFF_MSG = 'printf "Back-off restarting failed container %s in pod %s_%s(%s)" $c.name $.metadata.name $.metadata.namespace $.metadata.uid'
stages.append(stage("podtrace-pod-crash-backoff", sel(
    CRASH, ex(f"{C0}.state.terminated.exitCode", "Exists")),
    delay(200), [apply(event(BIND_C0, '"BackOff"', '"BackOff"', '"Warning"', BACKOFF_MSG,
                             count="(add1 (index .status.containerStatuses 0).restartCount)")),
                 patch_status("""{{ $x := index .status.containerStatuses 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ $x.containerID | Quote }}
  ready: false
  started: false
  restartCount: {{ add1 $x.restartCount }}
  lastState:
    terminated: {{ $x.state.terminated | toJson }}
  state:
    waiting:
      reason: CrashLoopBackOff
      message: {{ printf "back-off %ds restarting failed container=%s pod=%s_%s(%s)" (mul 10 (add1 $x.restartCount)) $x.name $.metadata.name $.metadata.namespace $.metadata.uid | Quote }}
""" + C0_REST)]))

# 8. Crash loop: restart after the back-off, at most 5 times (then it stays in CrashLoopBackOff).
stages.append(stage("podtrace-pod-crash-restart", sel(
    CRASH, ex(f"{C0}.state.waiting.reason", "In", "CrashLoopBackOff"),
    ex(f"{C0}.restartCount < 5", "In", "true")),
    delay(2000, "crash-backoff"),
    start_events(BIND_C0, count="(add1 (index .status.containerStatuses 0).restartCount)")
    + [patch_status("""{{ $x := index .status.containerStatuses 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  imageID: {{ $x.imageID | Quote }}
  containerID: {{ printf "containerd://%s" (sha256sum (printf "%s/%s/%d" $.metadata.uid $x.name (int $x.restartCount))) | Quote }}
  ready: false
  started: true
  restartCount: {{ $x.restartCount }}
  lastState: {{ $x.lastState | toJson }}
  state:
    running:
      startedAt: {{ $now | Quote }}
""" + C0_REST)]))

# 9. Image pull failure of the first app container.
PULL_ERR = ('printf "rpc error: code = NotFound desc = failed to pull and unpack image %q: '
            'failed to resolve reference %q: %s: not found" $c.image $c.image $c.image')
stages.append(stage("podtrace-pod-pull-fail", sel(
    PHASE_PENDING, INITIALIZED, FAIL, ex(f"{C0}.state.waiting.reason", "In", "ContainerCreating")),
    delay(800, "pull-duration"),
    [apply(event(BIND_C0, '"Failed-pull"', '"Failed"', '"Warning"',
                 f'printf "Failed to pull image %q: %s" $c.image ({PULL_ERR})')),
     apply(event(BIND_C0, '"Failed-ErrImagePull"', '"Failed"', '"Warning"', '"Error: ErrImagePull"')),
     # The kubelet goes on with the other containers.
     pull_begins(next_after(BIND_C0, init_to_app=False),
                 noop=('"Failed-ErrImagePull"', '"Failed"', '"Warning"', '"Error: ErrImagePull"')),
     patch_status("""{{ $x := index .status.containerStatuses 0 }}{{ $c := index .spec.containers 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    waiting:
      reason: ErrImagePull
      message: {{ """ + PULL_ERR + """ | Quote }}
""" + C0_REST)]))

stages.append(stage("podtrace-pod-pull-backoff", sel(
    ex(f"{C0}.state.waiting.reason", "In", "ErrImagePull")),
    delay(1000, "pull-backoff"),
    [apply(event(BIND_C0, '"BackOff-pull"', '"BackOff"', '"Normal"', 'printf "Back-off pulling image %q" $c.image')),
     apply(event(BIND_C0, '"Failed-ImagePullBackOff"', '"Failed"', '"Warning"', '"Error: ImagePullBackOff"')),
     patch_status("""{{ $x := index .status.containerStatuses 0 }}{{ $c := index .spec.containers 0 }}
containerStatuses:
- name: {{ $x.name | Quote }}
  image: {{ $x.image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    waiting:
      reason: ImagePullBackOff
      message: {{ printf "Back-off pulling image %q: ErrImagePull: %s" $c.image $x.state.waiting.message | Quote }}
""" + C0_REST)]))

# 10. Deletion: the pod object goes away without waiting for the grace period. No Killing
# events: an event cannot be created in a terminating namespace, and a failed step makes
# KWOK retry the whole stage forever, which would leave the namespace stuck.
stages.append({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": "podtrace-pod-delete"},
               "spec": {"resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                        "selector": {"matchExpressions": [ex(".metadata.deletionTimestamp", "Exists"),
                                                          ex(".metadata.finalizers", "DoesNotExist")]},
                        "delay": delay(200, "delete-duration"),
                        "steps": [{"delete": True}]}})

out = sys.stdout
out.write("# GENERATED by tests/env/stages/gen.py; edit that file, not this one.\n")
for s in stages:
    out.write("---\n")
    json.dump(s, out, indent=1)
    out.write("\n")
