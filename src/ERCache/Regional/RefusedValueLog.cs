using ERCache.Internal;
using Microsoft.Extensions.Logging;

namespace ERCache.Regional;

/// <summary>
/// Says why a model's regional values were refused: one warning per <see cref="RegionalValueProblem"/> at most every
/// <see cref="LogThrottle.Interval"/>, naming the user and what the value held, with the count of the same kind left
/// out since the last line. The diagnosis runs only on a refusal; the line's text only when it is logged.
/// </summary>
internal sealed class RefusedValueLog(ILogger logger, TimeProvider time, string model)
{
    private readonly LogThrottle _throttle = new(time, Enum.GetValues<RegionalValueProblem>().Length);

    /// <summary><paramref name="value"/>, read for <paramref name="userId"/>, did not decode as the model
    /// expects.</summary>
    public void Report(ReadOnlySpan<byte> value, StorageFormat format, ulong fingerprint, long userId, int dimensions)
    {
        var problem = RegionalValue.ProblemOf(value, format, fingerprint, userId, dimensions);
        if (_throttle.TryEnter((int)problem, out long suppressed))
        {
            Log.RegionalValueRefused(logger, model, userId, RegionalValue.Describe(problem, value, format, dimensions), suppressed);
        }
    }
}
