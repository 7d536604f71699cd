namespace ERCache.Testing;

/// <summary>What <see cref="FaultInjectingInference"/> does to each call; swap it at run time with
/// <see cref="FaultInjectingInference.Faults"/>. Rates are probabilities in 0..1, drawn per call.</summary>
public sealed record FaultSettings
{
    /// <summary>No faults: every call goes straight to the wrapped inference.</summary>
    public static readonly FaultSettings None = new();

    /// <summary>Share of calls that throw <see cref="InjectedFaultException"/>.</summary>
    public double ErrorRate { get; init; }

    /// <summary>Share of calls that never complete until their token is cancelled.</summary>
    public double HangRate { get; init; }

    /// <summary>Share of calls whose first row gets a NaN.</summary>
    public double NaNRate { get; init; }

    /// <summary>Share of calls whose first row gets +infinity.</summary>
    public double InfinityRate { get; init; }

    /// <summary>Share of calls whose first row is set with one value too few.</summary>
    public double WrongLengthRate { get; init; }

    /// <summary>Extra latency before each call, drawn from this distribution (null: none).</summary>
    public Func<Random, TimeSpan>? Latency { get; init; }

    /// <summary>A fixed latency with uniform jitter: <c>base ± jitter</c>, never negative.</summary>
    public static Func<Random, TimeSpan> Uniform(TimeSpan latency, TimeSpan jitter) =>
        rng => TimeSpan.FromTicks(Math.Max(0, latency.Ticks + (long)(((rng.NextDouble() * 2) - 1) * jitter.Ticks)));

    /// <summary>A log-normal latency (a long right tail, as real services have) with the given median.</summary>
    public static Func<Random, TimeSpan> LogNormal(TimeSpan median, double sigma) =>
        rng =>
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            double normal = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
            return TimeSpan.FromTicks((long)(median.Ticks * Math.Exp(sigma * normal)));
        };
}
