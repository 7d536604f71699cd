using System.Globalization;
using ERCache.Internal;
using Microsoft.Extensions.Logging;

namespace ERCache.Inference;

/// <summary>
/// Says which rows a model's delegate got wrong: one warning per kind of problem (wrong length, a value that is not
/// finite, a row never written) at most every <see cref="LogThrottle.Interval"/>, naming the row and what was found, with the count
/// of the same kind left out since the last line. A delegate that is wrong on every call logs a few lines a minute,
/// not one per request.
/// </summary>
internal sealed class InvalidRowLog(ILogger logger, TimeProvider time, string model)
{
    private readonly LogThrottle _throttle = new(time, kinds: 3);

    private enum Kind
    {
        WrongLength = 0,
        NotFinite = 1,
        NotWritten = 2,
    }

    /// <summary>Row <paramref name="index"/> of <paramref name="batch"/> was refused as an invalid vector.</summary>
    public void Report(InferenceBatch batch, int index)
    {
        var row = batch.Row(index);
        Kind kind;
        string problem;
        if (batch.StatusOf(index) == InferenceBatch.RowStatus.WrongLength)
        {
            kind = Kind.WrongLength;
            problem = string.Create(CultureInfo.InvariantCulture, $"a vector of {batch.WrongLength} floats for a model of {batch.Dimensions} dimensions");
        }
        else
        {
            int at = IndexOfNotFinite(row);
            kind = AllNaN(row) ? Kind.NotWritten : Kind.NotFinite;
            problem = kind == Kind.NotFinite
                ? string.Create(CultureInfo.InvariantCulture, $"value {row[at]} at index {at}")
                : "the row was never written (every value is still NaN)";
        }

        if (!_throttle.TryEnter((int)kind, out long suppressed))
        {
            return;
        }

        Log.InvalidVector(logger, model, index, batch.Count, problem, suppressed);
    }

    private static int IndexOfNotFinite(ReadOnlySpan<float> row)
    {
        for (int i = 0; i < row.Length; i++)
        {
            if (!float.IsFinite(row[i]))
            {
                return i;
            }
        }

        return -1;
    }

    private static bool AllNaN(ReadOnlySpan<float> row)
    {
        foreach (float value in row)
        {
            if (!float.IsNaN(value))
            {
                return false;
            }
        }

        return true;
    }
}
