using ERCache.Inference;

namespace ERCache.Testing;

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
