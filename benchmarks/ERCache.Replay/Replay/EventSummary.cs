namespace ERCache.Replay.Replay;

/// <summary>Requests, fallbacks and inferences over a stretch of the timeline.</summary>
internal sealed record PeriodFigures(TimeSpan Length, long Requests, long Fallbacks, long Inferences, double PeakInferenceRate, long Direct = 0)
{
    public double FallbackShare => Requests == 0 ? 0 : (double)Fallbacks / Requests;

    /// <summary>Share of requests answered by a direct hit.</summary>
    public double DirectShare => Requests == 0 ? 0 : (double)Direct / Requests;

    /// <summary>Inferences (request path and background) per second of trace time.</summary>
    public double InferenceRate => Length <= TimeSpan.Zero ? 0 : Inferences / Length.TotalSeconds;
}

/// <summary>
/// What an event did, from the windows of every model added together: the 30 minutes before it (its steady state)
/// against the 1, 5 and 30 minutes after it; the peak inference rate of a window as a multiple of the steady rate; how
/// long until the inference rate (a one-minute mean) is back within 10 % of steady, and until the direct-hit share (of
/// one window) is back to 90 % of steady; and, for a deletion, requests answered with a vector written before it.
/// </summary>
internal sealed record EventSummary(ReplayEvent Event, PeriodFigures Before, IReadOnlyList<PeriodFigures> After, TimeSpan? Recovery, long StaleServes)
{
    /// <summary>From the event to the end of the first window whose direct-hit share is at least 90 % of the steady
    /// share (null when none is).</summary>
    public TimeSpan? DirectRecovery { get; private init; }

    /// <summary>For a restart, the same figures for the restarted host alone (the fleet's dilute them by the hosts).</summary>
    public EventSummary? Host { get; private init; }

    public static readonly TimeSpan[] AfterLengths = [TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30)];

    public static readonly TimeSpan BeforeLength = TimeSpan.FromMinutes(30);

    /// <summary>The steady inference rate: the mean over the 30 minutes before the event.</summary>
    public double SteadyRate => Before.InferenceRate;

    /// <summary>A period's peak window rate as a multiple of <see cref="SteadyRate"/>, or null without a steady rate.</summary>
    public double? PeakMultiple(PeriodFigures period) => SteadyRate > 0 ? period.PeakInferenceRate / SteadyRate : null;

    public static EventSummary Of(ReplayEvent e, TimeSeries series, long staleServes, TimeSeries? hostSeries = null)
    {
        long at = e.AtMs;
        var before = Period(series, Math.Max(0, at - (long)BeforeLength.TotalMilliseconds), at);
        var after = AfterLengths.Select(length => Period(series, at, at + (long)length.TotalMilliseconds)).ToArray();
        return new EventSummary(e, before, after, RecoveryTime(series, at, before.InferenceRate), staleServes)
        {
            Host = hostSeries is null ? null : Of(e, hostSeries, staleServes),
            DirectRecovery = DirectRecoveryTime(series, at, before.DirectShare),
        };
    }

    /// <summary>The windows that lie wholly in [<paramref name="fromMs"/>, <paramref name="toMs"/>), or start in it
    /// when the event does not fall on a window's edge (a window counts after an event once it starts at or after it).</summary>
    private static PeriodFigures Period(TimeSeries series, long fromMs, long toMs)
    {
        long w = series.WindowMs;
        long requests = 0, fallbacks = 0, inferences = 0, windows = 0, direct = 0;
        double peak = 0;
        for (long i = (fromMs + w - 1) / w; (i * w) < toMs && i < series.Windows.Count; i++)
        {
            var window = series.Windows[(int)i];
            requests += window.Requests;
            fallbacks += window.Fallback;
            inferences += window.Inferences;
            direct += window.Direct;
            peak = Math.Max(peak, window.Inferences * 1000.0 / w);
            windows++;
        }

        return new PeriodFigures(TimeSpan.FromMilliseconds(windows * w), requests, fallbacks, inferences, peak, direct);
    }

    /// <summary>See <see cref="DirectRecovery"/>.</summary>
    private static TimeSpan? DirectRecoveryTime(TimeSeries series, long atMs, double steadyShare)
    {
        long w = series.WindowMs;
        for (int i = (int)((atMs + w - 1) / w); i < series.Windows.Count && steadyShare > 0; i++)
        {
            var window = series.Windows[i];
            if (window.Requests > 0 && (double)window.Direct / window.Requests >= 0.9 * steadyShare)
            {
                return TimeSpan.FromMilliseconds(((i + 1) * w) - atMs);
            }
        }

        return null;
    }

    /// <summary>From the event to the end of the first minute after it whose mean inference rate is within 10 % of
    /// <paramref name="steady"/> (one window when windows are a minute or longer); null when it never is.</summary>
    private static TimeSpan? RecoveryTime(TimeSeries series, long atMs, double steady)
    {
        if (steady <= 0)
        {
            return null;
        }

        long w = series.WindowMs;
        int span = (int)Math.Max(1, 60_000 / w);
        int first = (int)((atMs + w - 1) / w);
        long sum = 0;
        for (int i = first; i < series.Windows.Count; i++)
        {
            sum += series.Windows[i].Inferences;
            if (i - first >= span)
            {
                sum -= series.Windows[i - span].Inferences;
            }

            if (i - first + 1 >= span && sum * 1000.0 / (span * w) <= steady * 1.1)
            {
                return TimeSpan.FromMilliseconds(((i + 1) * w) - atMs);
            }
        }

        return null;
    }
}
