using System.Globalization;

namespace ERCache.Replay.Output;

/// <summary>
/// Progress of a long command, written to standard error (standard output keeps only the tables, to be redirected):
/// how far it is, the time taken and an estimate of the time left, extrapolated from the pace so far. A sweep reports
/// after each of its runs; a single replay at most every <see cref="Interval"/>, and only once it has run that long,
/// so a short replay prints nothing.
/// </summary>
internal sealed class ProgressLine
{
    /// <summary>Shortest time between two throttled lines, and the time before the first.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

    private readonly string _label;
    private readonly TextWriter _output;
    private readonly TimeProvider _time;
    private readonly long _started;
    private TimeSpan _lastLine = TimeSpan.Zero;

    public ProgressLine(string label, TextWriter output, TimeProvider? time = null)
    {
        _label = label;
        _output = output;
        _time = time ?? TimeProvider.System;
        _started = _time.GetTimestamp();
    }

    /// <summary>After run <paramref name="done"/> of <paramref name="total"/> of a sweep: always one line.</summary>
    public void RunDone(int done, int total, string what) =>
        Write((double)done / total, Inv($"{done} of {total} runs done (last: {what})"));

    /// <summary>Part of one replay done (0..1): a line when <see cref="Interval"/> has passed since the last.</summary>
    public void Report(double fraction)
    {
        var elapsed = _time.GetElapsedTime(_started);
        if (elapsed - _lastLine >= Interval)
        {
            Write(fraction, Inv($"{fraction:P0} of the trace"));
        }
    }

    private void Write(double fraction, string where)
    {
        var elapsed = _time.GetElapsedTime(_started);
        _lastLine = elapsed;
        string left = fraction is > 0 and < 1
            ? $", about {Duration(elapsed * ((1 - fraction) / fraction))} left"
            : "";
        _output.WriteLine($"{_label}: {where}, {Duration(elapsed)} elapsed{left}");
    }

    /// <summary>A duration as people read it: 42 s, 3 min 05 s, 1 h 02 min.</summary>
    internal static string Duration(TimeSpan t) => t.TotalHours >= 1 ? Inv($"{(int)t.TotalHours} h {t.Minutes:00} min")
        : t.TotalMinutes >= 1 ? Inv($"{(int)t.TotalMinutes} min {t.Seconds:00} s")
        : Inv($"{Math.Round(t.TotalSeconds):0} s");

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
