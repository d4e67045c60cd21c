-- Argo CD health check for portforward.dev/PortForward, from the resource's kstatus-style status.
-- Install: add this script to the argocd-cm ConfigMap under the key
-- resource.customizations.health.portforward.dev_PortForward (see deploy/README.md).
-- Argo CD runs it with the object as the global `obj` (Lua 5.1, gopher-lua); it returns { status, message }.
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

if obj.status == nil or obj.status.phase == nil then
  return result("Progressing", "Waiting for the operator to report status")
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  return result("Progressing", "Waiting for the operator to act on generation " .. tostring(generation))
end

local phase = obj.status.phase
local message = obj.status.message or ""

-- Stalled=True: an error only a spec change fixes (a named port that does not exist, a port in use).
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  return result("Degraded", stalled.message or message)
end

if phase == "Ready" then
  local ready = condition("Ready")
  if ready ~= nil and ready.status ~= "True" then
    return result("Progressing", ready.message or message)
  end
  return result("Healthy", message)
elseif phase == "Suspended" then
  return result("Suspended", "spec.suspend is true: listeners closed")
elseif phase == "Expired" then
  -- The ttl ran out on purpose: nothing is broken, and nothing is forwarded.
  return result("Suspended", message)
elseif phase == "Failed" or phase == "Degraded" then
  -- Degraded: no ready target pod right now (the forward recovers on its own when one is back).
  return result("Degraded", message)
end

-- Pending, or a phase this script does not know yet.
return result("Progressing", message)
