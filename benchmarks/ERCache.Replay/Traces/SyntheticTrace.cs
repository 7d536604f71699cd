namespace ERCache.Replay.Traces;

/// <summary>Settings of the synthetic trace generator.</summary>
public sealed record SyntheticSettings
{
    public int Users { get; init; } = 50_000;

    public TimeSpan Duration { get; init; } = TimeSpan.FromHours(6);

    /// <summary>Model names; each request event asks every model (one row per model, same timestamp).</summary>
    public IReadOnlyList<string> Models { get; init; } = ["model"];

    /// <summary>Chance that inference fails for a row, independently.</summary>
    public double FailureRate { get; init; }

    /// <summary>Windows (from the trace start) in which every row's inference fails.</summary>
    public IReadOnlyList<(TimeSpan Start, TimeSpan Length)> Outages { get; init; } = [];

    public int Seed { get; init; } = 1;

    /// <summary>Every user is already active when the trace starts (their requests began one duration earlier and
    /// only those from the start on are kept), so the request rate is flat over the trace. Otherwise each user's first
    /// request falls uniformly in the trace and the rate grows from the start to the end.</summary>
    public bool Stationary { get; init; }
}

/// <summary>
/// A seeded generator whose same-user gaps match the two points ERCache (arXiv 2410.06497) publishes for Meta's ads
/// traffic: 52% of a user's consecutive requests come within 1 minute and 76% within 10 minutes.
/// </summary>
/// <remarks>
/// Gaps are drawn from a mixture of three log-uniform ranges: 50.5% in [0.2 s, 60 s], 23.5% in (60 s, 600 s] and 26%
/// in (600 s, 2 h]. Each user starts at a uniform time in the trace and renews until the trace ends. A finite trace
/// sees a gap of length g only if it fits, in proportion to (duration - g), which under-counts long gaps; the
/// generator draws g with weight 1 / (duration - g) (rejection sampling) to compensate, and the weights above were
/// calibrated so that the gaps observed in a trace land on 52% and 76%. The test <c>SyntheticTraceTests</c> holds
/// the result within ±2 points.
/// </remarks>
public static class SyntheticTrace
{
    private static readonly (double Weight, double Low, double High)[] GapRanges =
    [
        (0.505, 0.2, 60),
        (0.235, 60, 600),
        (0.26, 600, 7200),
    ];

    /// <summary>The longest gap the generator draws, in seconds.</summary>
    public const double MaxGapSeconds = 7200;

    public static Trace Generate(SyntheticSettings settings)
    {
        double duration = settings.Duration.TotalSeconds;
        if (settings.Users < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(settings), settings.Users, "--users must be at least 1.");
        }

        if (duration <= MaxGapSeconds)
        {
            throw new ArgumentOutOfRangeException(nameof(settings), settings.Duration, $"--duration must be longer than the longest gap ({TimeSpan.FromSeconds(MaxGapSeconds)}).");
        }

        if (settings.FailureRate is < 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(settings), settings.FailureRate, "--failure-rate must be between 0 and 1.");
        }

        var rng = new Random(settings.Seed);
        var events = new List<(long Ts, long User)>();
        for (long user = 1; user <= settings.Users; user++)
        {
            double t = settings.Stationary ? -rng.NextDouble() * duration : rng.NextDouble() * duration;
            while (t < duration)
            {
                if (t >= 0)
                {
                    events.Add(((long)(t * 1000), user));
                }

                t += NextGap(rng, duration);
            }
        }

        // Serving order: by time; ties by user (a stable, documented order).
        events.Sort();
        int models = settings.Models.Count;
        var requests = new TraceRequest[events.Count * models];
        int n = 0;
        foreach (var (ts, user) in events)
        {
            bool outage = settings.Outages.Any(o => ts >= o.Start.TotalMilliseconds && ts < (o.Start + o.Length).TotalMilliseconds);
            for (int m = 0; m < models; m++)
            {
                bool fail = outage || (settings.FailureRate > 0 && rng.NextDouble() < settings.FailureRate);
                requests[n++] = new TraceRequest(ts, user, m, fail);
            }
        }

        return new Trace(settings.Models, requests);
    }

    private static double NextGap(Random rng, double duration)
    {
        double shortest = duration - MaxGapSeconds;
        while (true)
        {
            double u = rng.NextDouble();
            var range = GapRanges[^1];
            foreach (var r in GapRanges)
            {
                if (u < r.Weight)
                {
                    range = r;
                    break;
                }

                u -= r.Weight;
            }

            double gap = range.Low * Math.Pow(range.High / range.Low, rng.NextDouble());

            // Accept with probability proportional to 1 / (duration - gap), scaled so the largest is 1.
            if (rng.NextDouble() * (duration - gap) <= shortest)
            {
                return gap;
            }
        }
    }

    /// <summary>Share of consecutive same-user gaps (per model) at most <paramref name="limit"/>.</summary>
    public static double ShareOfGapsWithin(Trace trace, TimeSpan limit)
    {
        var last = new Dictionary<(int, long), long>();
        long within = 0, gaps = 0;
        foreach (var r in trace.Requests)
        {
            if (last.TryGetValue((r.Model, r.User), out long previous))
            {
                gaps++;
                if (r.TimestampMs - previous <= limit.TotalMilliseconds)
                {
                    within++;
                }
            }

            last[(r.Model, r.User)] = r.TimestampMs;
        }

        return gaps == 0 ? 0 : (double)within / gaps;
    }
}
