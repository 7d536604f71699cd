using ERCache.Inference;

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

/// <summary>The exception an injected error throws.</summary>
public sealed class InjectedFaultException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InjectedFaultException()
        : base("Injected inference fault.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public InjectedFaultException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public InjectedFaultException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Wraps any inference and injects errors, latency, hangs and invalid vectors at configurable rates, switchable at
/// run time. Latency and hangs wait on the given <see cref="TimeProvider"/>, so tests drive them with a manual clock.
/// </summary>
public sealed class FaultInjectingInference : IEmbeddingInference
{
    private readonly IEmbeddingInference _inner;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly Lock _randomLock = new();
    private FaultSettings _faults;
    private long _calls;
    private long _injected;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    /// <param name="inner">The real inference.</param>
    /// <param name="faults">The initial faults; <see cref="FaultSettings.None"/> when null.</param>
    /// <param name="timeProvider">The clock latency waits on; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="seed">Seed of the generator that decides which calls fail.</param>
    public FaultInjectingInference(IEmbeddingInference inner, FaultSettings? faults = null, TimeProvider? timeProvider = null, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        _faults = faults ?? FaultSettings.None;
        _time = timeProvider ?? TimeProvider.System;
        _random = new Random(seed);
    }

    /// <summary>The faults in force; set it to switch at run time (takes effect from the next call).</summary>
    public FaultSettings Faults
    {
        get => Volatile.Read(ref _faults);
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            Volatile.Write(ref _faults, value);
        }
    }

    /// <summary>Calls seen.</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Calls that got a fault (error, hang or invalid vector).</summary>
    public long Injected => Interlocked.Read(ref _injected);

    /// <inheritdoc />
    public async ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        Interlocked.Increment(ref _calls);
        var faults = Faults;
        double error, hang, nan, inf, wrongLength;
        TimeSpan latency;
        lock (_randomLock)
        {
            (error, hang, nan, inf, wrongLength) = (_random.NextDouble(), _random.NextDouble(), _random.NextDouble(), _random.NextDouble(), _random.NextDouble());
            latency = faults.Latency?.Invoke(_random) ?? TimeSpan.Zero;
        }

        if (latency > TimeSpan.Zero)
        {
            await Task.Delay(latency, _time, cancellationToken).ConfigureAwait(false);
        }

        if (hang < faults.HangRate)
        {
            Interlocked.Increment(ref _injected);
            await Task.Delay(Timeout.InfiniteTimeSpan, _time, cancellationToken).ConfigureAwait(false);
        }

        if (error < faults.ErrorRate)
        {
            Interlocked.Increment(ref _injected);
            throw new InjectedFaultException();
        }

        await _inner.InferAsync(batch, cancellationToken).ConfigureAwait(false);
        if (batch.Count == 0)
        {
            return;
        }

        if (nan < faults.NaNRate)
        {
            Interlocked.Increment(ref _injected);
            batch.GetRow(0).Span[0] = float.NaN;
        }
        else if (inf < faults.InfinityRate)
        {
            Interlocked.Increment(ref _injected);
            batch.GetRow(0).Span[^1] = float.PositiveInfinity;
        }
        else if (wrongLength < faults.WrongLengthRate)
        {
            Interlocked.Increment(ref _injected);
            batch.SetRow(0, batch.GetRow(0).Span[..^1]);
        }
    }
}
