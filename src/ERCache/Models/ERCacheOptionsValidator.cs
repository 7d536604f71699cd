using System.Globalization;
using ERCache.Internal;
using ERCache.Tiers;
using Microsoft.Extensions.Options;

namespace ERCache.Models;

/// <summary>
/// Validates <see cref="ERCacheOptions"/> and reports every bad field in one message, each named by its
/// configuration path (<c>ERCache:Models:ctr:Direct:Ttl must be positive (got 00:00:00).</c>).
/// </summary>
internal sealed class ERCacheOptionsValidator : IValidateOptions<ERCacheOptions>
{
    private readonly string _sectionPath;

    /// <summary>Creates a validator whose messages name fields under <paramref name="sectionPath"/>.</summary>
    /// <param name="sectionPath">The configuration section the options were bound from; <c>ERCache</c> by default.</param>
    public ERCacheOptionsValidator(string sectionPath = ERCacheOptions.DefaultSectionPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sectionPath);
        _sectionPath = sectionPath;
    }

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, ERCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = Collect(options);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>Throws one <see cref="OptionsValidationException"/> naming every bad field; returns when the options are
    /// valid.</summary>
    public void ThrowIfInvalid(ERCacheOptions options)
    {
        var errors = Collect(options);
        if (errors.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(ERCacheOptions), errors);
        }
    }

    /// <summary>Returns one message per bad field; empty when the options are valid.</summary>
    public IReadOnlyList<string> Collect(ERCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = CollectBound(options);
        if (options.BindingErrors.Count == 0)
        {
            return errors;
        }

        // Settings that did not bind were left at their defaults: report why they did not bind rather than the default,
        // each beside the other messages about its model and section.
        var bad = options.BindingErrors.Select(e => e.Path).ToArray();
        return options.BindingErrors.Select(e => e.Message)
            .Concat(errors.Where(e => !bad.Any(b => e.StartsWith(b + " ", StringComparison.OrdinalIgnoreCase) || e.StartsWith(b + ":", StringComparison.OrdinalIgnoreCase))))
            .OrderBy(e => Place(e).Model, StringComparer.Ordinal)
            .ThenBy(e => Place(e).Section)
            .ToList();
    }

    /// <summary>Where a message belongs: its model ("" for the section itself) and the part of the model it is about
    /// (0 the model's own fields, 1 Inference, 2 Direct, 3 Failover, 4 DefaultVector), in the validator's order.</summary>
    private (string Model, int Section) Place(string message)
    {
        string models = $"{_sectionPath}:Models:";
        if (!message.StartsWith(models, StringComparison.OrdinalIgnoreCase))
        {
            return (string.Empty, 0);
        }

        int end = message.IndexOfAny([':', ' '], models.Length);
        if (end < 0)
        {
            return (message[models.Length..], 0);
        }

        string rest = message[(end + 1)..];
        int section = rest.StartsWith("Inference", StringComparison.OrdinalIgnoreCase) ? 1
            : rest.StartsWith("Direct", StringComparison.OrdinalIgnoreCase) ? 2
            : rest.StartsWith("Failover", StringComparison.OrdinalIgnoreCase) ? 3
            : rest.StartsWith("DefaultVector", StringComparison.OrdinalIgnoreCase) ? 4
            : 0;
        return (message[models.Length..end], section);
    }

    private List<string> CollectBound(ERCacheOptions options)
    {
        var errors = new List<string>();
        ValidateRegional(options.Regional, errors);
        ValidateSnapshots(options.Snapshots, errors);
        if (options.Models is null || options.Models.Count == 0)
        {
            errors.Add($"{_sectionPath}:Models must configure at least one model.");
            return errors;
        }

        foreach (var (name, model) in options.Models.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            string p = $"{_sectionPath}:Models:{name}";
            if (model is null)
            {
                errors.Add($"{p} is empty; it needs at least Dimensions and the tier TTLs.");
                continue;
            }

            ValidateModel(p, model, errors);
        }

        return errors;
    }

    private static void ValidateModel(string p, ModelOptions model, List<string> errors)
    {
        if (model.Dimensions is < 1 or > ERCacheLimits.MaxDimensions)
        {
            errors.Add($"{p}:Dimensions must be between 1 and {ERCacheLimits.MaxDimensions} (got {model.Dimensions}).");
        }

        if (string.IsNullOrWhiteSpace(model.Version))
        {
            errors.Add($"{p}:Version must not be empty.");
        }

        var inference = model.Inference ?? new InferenceOptions();
        if (inference.Timeout <= TimeSpan.Zero || inference.Timeout > ERCacheLimits.MaxInferenceTimeout)
        {
            errors.Add($"{p}:Inference:Timeout must be positive and at most {Format(ERCacheLimits.MaxInferenceTimeout)}, the longest .NET timer (got {Format(inference.Timeout)}).");
        }

        if (inference.MaxBatchSize is < 1 or > ERCacheLimits.MaxBatchSize)
        {
            errors.Add($"{p}:Inference:MaxBatchSize must be between 1 and {ERCacheLimits.MaxBatchSize} (got {inference.MaxBatchSize}).");
        }

        if (inference.MaxConcurrency < 1)
        {
            errors.Add($"{p}:Inference:MaxConcurrency must be positive (got {inference.MaxConcurrency}).");
        }

        if (inference.HardTimeout is { } hard && inference.Timeout > TimeSpan.Zero && hard < inference.Timeout)
        {
            errors.Add($"{p}:Inference:HardTimeout ({Format(hard)}) must not be shorter than {p}:Inference:Timeout ({Format(inference.Timeout)}).");
        }
        else if (inference.HardTimeout > ERCacheLimits.MaxInferenceTimeout)
        {
            errors.Add($"{p}:Inference:HardTimeout must be at most {Format(ERCacheLimits.MaxInferenceTimeout)}, the longest .NET timer (got {Format(inference.HardTimeout.Value)}).");
        }

        if (inference.BatchWindow < TimeSpan.Zero || (inference.Timeout > TimeSpan.Zero && inference.BatchWindow >= inference.Timeout))
        {
            errors.Add($"{p}:Inference:BatchWindow must be zero or more and shorter than Inference:Timeout (got {Format(inference.BatchWindow)}).");
        }

        if (inference.MaxQueue < 1)
        {
            errors.Add($"{p}:Inference:MaxQueue must be positive (got {inference.MaxQueue}).");
        }

        ValidateBreaker($"{p}:Inference:CircuitBreaker", inference.CircuitBreaker, errors);
        if (model.Regional is { Format: { } regionalFormat } && !Enum.IsDefined(regionalFormat))
        {
            errors.Add(ERCacheConfigurationBinder.UnknownName(typeof(StorageFormat), $"{p}:Regional:Format", regionalFormat.ToString()));
        }

        var direct = model.Direct ?? new TierOptions();
        var failover = model.Failover ?? new TierOptions();
        ValidateTier($"{p}:Direct", direct, model.Dimensions, errors);
        ValidateTier($"{p}:Failover", failover, model.Dimensions, errors);
        if (direct.Enabled && failover.Enabled && direct.Ttl > TimeSpan.Zero && failover.Ttl > TimeSpan.Zero && failover.Ttl < direct.Ttl)
        {
            errors.Add($"{p}:Failover:Ttl ({Format(failover.Ttl)}) must not be shorter than {p}:Direct:Ttl ({Format(direct.Ttl)}).");
        }

        ValidateFreshness($"{p}:Freshness", model.Freshness, direct.Enabled, errors);
        ValidateRollout($"{p}:Rollout", model, inference, errors);
        if (model.DefaultVector is { } vector)
        {
            if (model.Dimensions is >= 1 and <= ERCacheLimits.MaxDimensions && vector.Length != model.Dimensions)
            {
                errors.Add($"{p}:DefaultVector must have Dimensions ({model.Dimensions}) values (got {vector.Length}).");
            }

            int bad = Storage.RowKernels.IndexOfNonFinite(vector);
            if (bad >= 0)
            {
                errors.Add($"{p}:DefaultVector:{bad} must be finite (got {vector[bad].ToString(CultureInfo.InvariantCulture)}).");
            }
        }
    }

    /// <summary>Drift sampling and refresh ahead: fractions in range, and a direct tier to work on.</summary>
    private static void ValidateFreshness(string f, FreshnessOptions? freshness, bool directEnabled, List<string> errors)
    {
        if (freshness is null)
        {
            return;
        }

        if (!(freshness.SampleRate is >= 0 and <= 1))
        {
            errors.Add($"{f}:SampleRate must be between 0 and 1 (got {freshness.SampleRate.ToString(CultureInfo.InvariantCulture)}).");
        }
        else if (freshness.SampleRate > 0 && !directEnabled)
        {
            errors.Add($"{f}:SampleRate samples direct hits, but the model's direct tier is disabled (got {freshness.SampleRate.ToString(CultureInfo.InvariantCulture)}); set it to 0 or enable Direct.");
        }

        if (freshness.RefreshAhead is { } ahead)
        {
            if (!(ahead is > 0 and < 1))
            {
                errors.Add($"{f}:RefreshAhead must be a fraction of Direct:Ttl between 0 and 1, both excluded (got {ahead.ToString(CultureInfo.InvariantCulture)}).");
            }
            else if (!directEnabled)
            {
                errors.Add($"{f}:RefreshAhead refreshes direct-tier entries, but the model's direct tier is disabled (got {ahead.ToString(CultureInfo.InvariantCulture)}); remove it or enable Direct.");
            }
        }
    }

    /// <summary>A rollout: a next version other than the current one, and limits within the model's own.</summary>
    private static void ValidateRollout(string r, ModelOptions model, InferenceOptions inference, List<string> errors)
    {
        if (model.Rollout is not { } rollout)
        {
            return;
        }

        if (rollout.NextVersion is null)
        {
            if (rollout.Start is not null || rollout.MaxConcurrency is not null || rollout.BatchSize is not null || rollout.SwitchAt is not null)
            {
                errors.Add($"{r}:NextVersion must be set when other rollout settings are (got none); set it or remove the section.");
            }

            return;
        }

        if (string.IsNullOrWhiteSpace(rollout.NextVersion))
        {
            errors.Add($"{r}:NextVersion must not be empty (got '{rollout.NextVersion}').");
        }
        else if (string.Equals(rollout.NextVersion, model.Version, StringComparison.Ordinal))
        {
            errors.Add($"{r}:NextVersion must differ from Version (both are '{rollout.NextVersion}'); remove the rollout once the version is current.");
        }

        if (rollout.MaxConcurrency is { } concurrency && (concurrency < 1 || concurrency > inference.MaxConcurrency))
        {
            errors.Add($"{r}:MaxConcurrency must be between 1 and Inference:MaxConcurrency ({inference.MaxConcurrency}) (got {concurrency}).");
        }

        if (rollout.SwitchOver < TimeSpan.Zero || rollout.SwitchOver > TimeSpan.FromDays(1))
        {
            errors.Add($"{r}:SwitchOver must be between 00:00:00 and 1.00:00:00 (got {Format(rollout.SwitchOver)}).");
        }
        else if (rollout.SwitchOver > TimeSpan.Zero && rollout.SwitchAt is null)
        {
            errors.Add($"{r}:SwitchOver spreads a gradual switch that starts at SwitchAt, which is not set (got SwitchOver {Format(rollout.SwitchOver)}).");
        }

        if (rollout.BatchSize is { } size && (size < 1 || size > inference.MaxBatchSize))
        {
            errors.Add($"{r}:BatchSize must be between 1 and Inference:MaxBatchSize ({inference.MaxBatchSize}) (got {size}).");
        }
    }

    /// <summary>A breaker's settings, within what Polly's circuit breaker accepts.</summary>
    private static void ValidateBreaker(string b, CircuitBreakerOptions? breaker, List<string> errors)
    {
        if (breaker is not { Enabled: true })
        {
            return;
        }

        if (!(breaker.FailureRatio > 0 && breaker.FailureRatio <= 1))
        {
            errors.Add($"{b}:FailureRatio must be in (0, 1] (got {breaker.FailureRatio.ToString(CultureInfo.InvariantCulture)}).");
        }

        if (breaker.MinimumThroughput < 2)
        {
            errors.Add($"{b}:MinimumThroughput must be at least 2 (got {breaker.MinimumThroughput}).");
        }

        foreach (var (name, value) in new[] { ("SamplingDuration", breaker.SamplingDuration), ("BreakDuration", breaker.BreakDuration) })
        {
            if (value < TimeSpan.FromMilliseconds(500))
            {
                errors.Add($"{b}:{name} must be at least 00:00:00.500 (got {Format(value)}).");
            }
            else if (value > TimeSpan.FromDays(1))
            {
                errors.Add($"{b}:{name} must be at most 1.00:00:00, the longest Polly's circuit breaker accepts (got {Format(value)}).");
            }
        }
    }

    /// <summary>The section-wide regional settings (used when a regional store is registered).</summary>
    private void ValidateRegional(RegionalOptions? regional, List<string> errors)
    {
        if (regional is null)
        {
            return;
        }

        string r = $"{_sectionPath}:Regional";
        foreach (var (name, value) in new[] { ("Timeout", regional.Timeout), ("WriteTimeout", regional.WriteTimeout), ("FlushInterval", regional.FlushInterval) })
        {
            if (value <= TimeSpan.Zero || value > TimeSpan.FromMinutes(1))
            {
                errors.Add($"{r}:{name} must be positive and at most 00:01:00 (got {Format(value)}).");
            }
        }

        if (regional.QueueCapacity is < 1 or > 10_000_000)
        {
            errors.Add($"{r}:QueueCapacity must be between 1 and 10000000 (got {regional.QueueCapacity}).");
        }

        if (regional.MaxBatchSize is < 1 or > ERCacheLimits.MaxBatchSize)
        {
            errors.Add($"{r}:MaxBatchSize must be between 1 and {ERCacheLimits.MaxBatchSize} (got {regional.MaxBatchSize}).");
        }

        if (regional.MaxClockSkew < TimeSpan.Zero || regional.MaxClockSkew > TimeSpan.FromHours(1))
        {
            errors.Add($"{r}:MaxClockSkew must be between 00:00:00 and 01:00:00 (got {Format(regional.MaxClockSkew)}).");
        }

        if (regional.KeyPrefix is { } prefix && (string.IsNullOrWhiteSpace(prefix) || prefix.Length > 100 || prefix.AsSpan().IndexOfAny('{', '}') >= 0))
        {
            errors.Add($"{r}:KeyPrefix must be 1 to 100 characters without braces (got '{prefix}').");
        }

        ValidateBreaker($"{r}:CircuitBreaker", regional.CircuitBreaker, errors);
    }

    /// <summary>Snapshots: a usable directory name and bounded times.</summary>
    private void ValidateSnapshots(SnapshotOptions? snapshots, List<string> errors)
    {
        if (snapshots is null)
        {
            return;
        }

        string s = $"{_sectionPath}:Snapshots";
        if (snapshots.Directory is { } directory && (string.IsNullOrWhiteSpace(directory) || directory.IndexOfAny(Path.GetInvalidPathChars()) >= 0))
        {
            errors.Add($"{s}:Directory must be a directory path (got '{directory}').");
        }

        if (snapshots.Interval is { } interval && (interval < TimeSpan.FromMinutes(1) || interval > TimeSpan.FromDays(1)))
        {
            errors.Add($"{s}:Interval must be between 00:01:00 and 1.00:00:00 (got {Format(interval)}).");
        }

        foreach (var (name, value) in new[] { ("LoadTimeout", snapshots.LoadTimeout), ("WriteTimeout", snapshots.WriteTimeout) })
        {
            if (value <= TimeSpan.Zero || value > TimeSpan.FromMinutes(10))
            {
                errors.Add($"{s}:{name} must be positive and at most 00:10:00 (got {Format(value)}).");
            }
        }
    }

    private static void ValidateTier(string p, TierOptions tier, int dimensions, List<string> errors)
    {
        if (!tier.Enabled)
        {
            return;
        }

        if (tier.Ttl <= TimeSpan.Zero)
        {
            errors.Add($"{p}:Ttl must be positive (got {Format(tier.Ttl)}).");
        }

        if (tier.Capacity < 1)
        {
            errors.Add($"{p}:Capacity must be positive (got {tier.Capacity}).");
        }
        else if (tier.Capacity > ERCacheLimits.MaxTierCapacity)
        {
            errors.Add($"{p}:Capacity must be at most {ERCacheLimits.MaxTierCapacity} (got {tier.Capacity}).");
        }

        var eviction = tier.Eviction;
        bool knownEviction = Enum.IsDefined(eviction);
        if (!knownEviction)
        {
            errors.Add(ERCacheConfigurationBinder.UnknownName(typeof(EvictionStrategy), $"{p}:Eviction", eviction.ToString()));
        }

        var format = tier.Format;
        bool knownFormat = Enum.IsDefined(format);
        if (!knownFormat)
        {
            errors.Add(ERCacheConfigurationBinder.UnknownName(typeof(StorageFormat), $"{p}:Format", format.ToString()));
        }

        if (tier.MaxBytes is long maxBytes && knownEviction && knownFormat)
        {
            if (eviction == EvictionStrategy.MemoryCache)
            {
                errors.Add($"{p}:MaxBytes is not supported with Eviction MemoryCache (got {maxBytes}); use Capacity, or a slab strategy (Lru, Fifo, Sieve).");
            }
            else if (dimensions is >= 1 and <= ERCacheLimits.MaxDimensions)
            {
                long least = TierSizing.FixedBytes + TierSizing.BytesPerEntryBound(format, eviction, dimensions);
                if (maxBytes < least)
                {
                    errors.Add($"{p}:MaxBytes must be at least {least} to hold one {format} entry of {dimensions} dimensions with {eviction} eviction (got {maxBytes}).");
                }
            }
        }
    }

    private static string Format(TimeSpan value) => value.ToString("c", CultureInfo.InvariantCulture);
}
