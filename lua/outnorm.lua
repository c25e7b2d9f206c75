-- outnorm: which error a budget strategy minimises when the model may have
-- calibration statistics (rankscope(1), CALIBRATION).  Not a strategy (it
-- has no run).  A strategy's "error" parameter "auto" becomes "out" when
-- some layer has statistics and `weight` (the strategy's weight-norm error)
-- otherwise; "out" needs statistics on every layer the strategy plans, and
-- says which one lacks them.
local M = {}

function M.resolve(model, layers, params, weight)
	if params.error == "auto" then
		params.error = model:calibrated() and "out" or weight
	end
	if params.error == "out" then
		for _, layer in ipairs(layers) do
			if not layer:calibrated() then
				error(string.format("error=out: layer '%s' has no calibration statistics",
					layer.name), 0)
			end
		end
	end
	return params.error
end

-- The "error" parameter of a rule that is defined in the weight norm and
-- has an output-norm reading (`out` says what that reading is).
function M.param(out)
	return { name = "error", type = "choice", choices = { "auto", "weight", "out" },
	         default = "auto", help = "weight norm, or " .. out
	         .. " (auto: out with --calibration)" }
end

return M
