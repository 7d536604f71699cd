using ERCache;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Models;
using ERCache.Regional;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers ERCache in an <see cref="IServiceCollection"/>.</summary>
public static class ERCacheServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="EmbeddingCache"/> (also as <see cref="IEmbeddingCache"/>) as a singleton, binding
    /// <see cref="ERCacheOptions"/> from the configuration section <paramref name="sectionPath"/>, validated at
    /// start-up and on every reload. Values that do not convert, keys that match no setting and durations written as
    /// bare numbers are reported by path, like every other invalid setting.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="sectionPath">The configuration section; <c>ERCache</c> by default.</param>
    /// <returns>A builder to register each model's inference with <see cref="AddModel(IERCacheBuilder, string, EmbeddingInference)"/>.</returns>
    public static IERCacheBuilder AddERCache(this IServiceCollection services, string sectionPath = ERCacheOptions.DefaultSectionPath)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(sectionPath);
        if (CacheRegistration.Of(services).Claim($"configuration section '{sectionPath}'"))
        {
            return new ERCacheBuilder(services, sectionPath); // the same section again: the one cache is registered already
        }

        // Bound through the checked binder: what does not bind is reported by path at start-up, not dropped. Reloads
        // are followed by the cache itself (FollowConfiguration), not by the options monitor, whose validation would
        // throw an invalid reload out of IConfigurationRoot.Reload or the file watcher.
        var modelSections = ModelSections.Of(services);
        services.TryAddSingleton<OptionsBinding>();
        services.AddOptions<ERCacheOptions>()
            .Configure<IConfiguration, OptionsBinding>((options, configuration, binding) =>
            {
                var section = configuration.GetSection(sectionPath);
                binding.ReloadToken = section.GetReloadToken(); // before reading: a reload during the binding counts as after it
                ERCacheConfigurationBinder.Bind(section, sectionPath, options, modelSections.Names);
            })
            .ValidateOnStart();
        return AddCore(services, sectionPath, followSection: true);
    }

    /// <summary>
    /// Adds <see cref="EmbeddingCache"/> configured in code rather than from configuration.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Fills in the models.</param>
    /// <returns>A builder to register each model's inference.</returns>
    public static IERCacheBuilder AddERCache(this IServiceCollection services, Action<ERCacheOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        CacheRegistration.Of(services).Claim(null);
        services.AddOptions<ERCacheOptions>().Configure(configure).ValidateOnStart();
        return AddCore(services, ERCacheOptions.DefaultSectionPath, followSection: false);
    }

    /// <summary>Registers <paramref name="inference"/> as the inference of model <paramref name="name"/>.</summary>
    public static IERCacheBuilder AddModel(this IERCacheBuilder builder, string name, EmbeddingInference inference)
    {
        ArgumentNullException.ThrowIfNull(inference);
        return builder.AddModel(name, new DelegateInference(inference));
    }

    /// <summary>Registers <paramref name="inference"/> as the inference of model <paramref name="name"/>.</summary>
    /// <remarks>Model names are case-insensitive, as in configuration: <c>AddModel("CTR", ...)</c> serves the model
    /// configured as <c>ctr</c>.</remarks>
    /// <exception cref="ArgumentException">A model of the same name, in any spelling, is already registered.</exception>
    public static IERCacheBuilder AddModel(this IERCacheBuilder builder, string name, IEmbeddingInference inference)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(inference);
        ModelNames.Of(builder.Services).Register(name);
        builder.Services.AddKeyedSingleton(name, inference);
        return builder;
    }

    /// <summary>Registers the inference of model <paramref name="name"/>, built by <paramref name="factory"/> when the
    /// cache is built (at host start); the container disposes it with itself when it is disposable.</summary>
    /// <param name="builder">The ERCache builder.</param>
    /// <param name="name">The configured model's name (case-insensitive).</param>
    /// <param name="factory">Builds the inference from the container.</param>
    /// <returns>The builder, for chaining.</returns>
    public static IERCacheBuilder AddModel(this IERCacheBuilder builder, string name, Func<IServiceProvider, IEmbeddingInference> factory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        ModelNames.Of(builder.Services).Register(name);
        builder.Services.AddKeyedSingleton(name, (sp, _) => factory(sp));
        return builder;
    }

    /// <summary>Registers <typeparamref name="TInference"/>, created by the container, as the inference of model <paramref name="name"/>.</summary>
    /// <remarks>Model names are case-insensitive, as in configuration.</remarks>
    /// <exception cref="ArgumentException">A model of the same name, in any spelling, is already registered.</exception>
    public static IERCacheBuilder AddModel<TInference>(this IERCacheBuilder builder, string name)
        where TInference : class, IEmbeddingInference
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ModelNames.Of(builder.Services).Register(name);
        builder.Services.AddKeyedSingleton<IEmbeddingInference, TInference>(name);
        return builder;
    }

    /// <summary>
    /// Declares a subsection every model may have that an adapter package reads itself (ERCache.OnnxRuntime declares
    /// <c>Onnx</c> for <c>ERCache:Models:{name}:Onnx</c>): the cache's binder, which reports every key a model does not
    /// know, leaves it to the adapter. Adapters call this; an application need not.
    /// </summary>
    /// <param name="builder">The ERCache builder.</param>
    /// <param name="name">The subsection's key under each model.</param>
    /// <returns>The builder, for chaining.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty or names a model setting.</exception>
    public static IERCacheBuilder AddModelSection(this IERCacheBuilder builder, string name)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (typeof(ModelOptions).GetProperty(name, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase) is not null)
        {
            throw new ArgumentException($"'{name}' is a setting of every model (ModelOptions.{name}), not an adapter's subsection.", nameof(name));
        }

        ModelSections.Of(builder.Services).Add(name);
        return builder;
    }

    private static ERCacheBuilder AddCore(IServiceCollection services, string sectionPath, bool followSection)
    {
        ModelNames.Of(services); // registered now, for the start-up check
        var modelSections = ModelSections.Of(services); // captured now: the collection is not touched once built
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ERCacheOptions>>(new ERCacheOptionsValidator(sectionPath)));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(InferenceDispatcher.DedicatedThreads);
        services.TryAddSingleton(sp =>
        {
            var cache = new EmbeddingCache(
                sp.GetRequiredService<IOptionsMonitor<ERCacheOptions>>(),
                name => sp.GetKeyedService<IEmbeddingInference>(KeyOfInference(services, name)),
                new EmbeddingCacheServices
                {
                    TimeProvider = sp.GetRequiredService<TimeProvider>(),
                    MeterFactory = sp.GetService<System.Diagnostics.Metrics.IMeterFactory>(),
                    Logger = sp.GetService<ILogger<EmbeddingCache>>(),
                    Dispatcher = sp.GetRequiredService<InferenceDispatcher>(),
                    RegionalStore = sp.GetService<IRegionalStore>(),
                },
                sectionPath,
                optionsValidated: true); // by the ERCacheOptionsValidator registered above, when the monitor created the value
            if (followSection)
            {
                cache.FollowConfiguration(
                    sp.GetRequiredService<IConfiguration>().GetSection(sectionPath), sectionPath, modelSections.Names, sp.GetRequiredService<OptionsBinding>().ReloadToken);
            }

            return cache;
        });
        services.TryAddSingleton<IEmbeddingCache>(sp => sp.GetRequiredService<EmbeddingCache>());

        // In a host, the cache is built, every model checked for its inference and the cache warmed up when the host
        // starts (before a web server listens), not on the first request.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, StartupCheck>());
        return new ERCacheBuilder(services, sectionPath);
    }

    /// <summary>Builds the cache at host start (a configured model without inference fails it, naming the models),
    /// refuses an <c>AddModel</c> whose name matches no configured model, and waits for the snapshots to load.</summary>
    private sealed class StartupCheck(EmbeddingCache cache, ModelNames names) : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            var unmatched = names.All.Where(n => !cache.Models.Contains(n, StringComparer.OrdinalIgnoreCase)).Order(StringComparer.Ordinal).ToArray();
            if (unmatched.Length > 0)
            {
                throw new InvalidOperationException(
                    $"AddModel names model(s) that are not configured: {string.Join(", ", unmatched.Select(n => $"'{n}'"))}. " +
                    $"Configured models: {string.Join(", ", cache.Models.Order(StringComparer.Ordinal))}.");
            }

            await cache.WarmUpAsync(cancellationToken).ConfigureAwait(false); // before the host reports started
            await cache.WhenReadyAsync(cancellationToken).ConfigureAwait(false); // the snapshots, bounded by Snapshots:LoadTimeout
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>The one <typeparamref name="T"/> kept in <paramref name="services"/> while it is being built (added as a
    /// singleton instance the first time), so every registration call of one collection shares it.</summary>
    private static T RegistrationState<T>(IServiceCollection services)
        where T : class, new()
    {
        if (services.FirstOrDefault(d => d.ServiceType == typeof(T))?.ImplementationInstance is T existing)
        {
            return existing;
        }

        var created = new T();
        services.AddSingleton(created);
        return created;
    }

    private sealed class ERCacheBuilder(IServiceCollection services, string sectionPath) : IERCacheBuilder
    {
        public IServiceCollection Services { get; } = services;

        public string SectionPath { get; } = sectionPath;
    }

    /// <summary>
    /// What the one cache of a service collection is configured from. A second <c>AddERCache</c> from anywhere else would
    /// silently add its models to the same cache (there is one <see cref="ERCacheOptions"/> per container), so it is
    /// refused, naming both.
    /// </summary>
    private sealed class CacheRegistration
    {
        private readonly Lock _lock = new();
        private string? _source;

        public static CacheRegistration Of(IServiceCollection services) => RegistrationState<CacheRegistration>(services);

        /// <summary>Records <paramref name="source"/> (null: options configured in code); true when it is the source
        /// already recorded, so there is nothing more to register.</summary>
        /// <exception cref="InvalidOperationException">The cache is already configured from another source.</exception>
        public bool Claim(string? source)
        {
            string described = source ?? "code (AddERCache(configure))";
            lock (_lock)
            {
                if (_source is null)
                {
                    _source = described;
                    return false;
                }

                if (source is not null && _source == described)
                {
                    return true;
                }

                throw new InvalidOperationException(
                    $"AddERCache was already called on this service collection, configured from {_source}; configuring it again from {described} " +
                    "would add those models to the same cache. One container holds one ERCache: put every model under one section " +
                    "(ERCache:Models:<name>), or build a second cache yourself with EmbeddingCache.Create.");
            }
        }
    }

    /// <summary>The configuration's reload token when the options monitor bound the cache's options, one per service
    /// provider: the cache compares it once it follows the section, and applies a reload that came in between (the host
    /// validates options at start, before it builds the cache).</summary>
    private sealed class OptionsBinding
    {
        public IChangeToken? ReloadToken { get; set; }
    }

    /// <summary>
    /// The per-model subsections adapter packages declared with <c>AddModelSection</c>, one set per service collection:
    /// the binder leaves them to their adapters instead of reporting them as unknown settings.
    /// </summary>
    private sealed class ModelSections
    {
        private readonly Lock _lock = new();
        private string[] _names = [];

        public IReadOnlyCollection<string> Names => Volatile.Read(ref _names);

        public static ModelSections Of(IServiceCollection services) => RegistrationState<ModelSections>(services);

        public void Add(string name)
        {
            lock (_lock)
            {
                if (!_names.Contains(name, StringComparer.OrdinalIgnoreCase))
                {
                    Volatile.Write(ref _names, [.. _names, name]);
                }
            }
        }
    }

    /// <summary>
    /// The key model <paramref name="name"/>'s inference is registered under: keyed services match keys exactly, while
    /// model names match in any case, so the key is found among the keyed <see cref="IEmbeddingInference"/>
    /// registrations (those of <c>AddModel</c> and those made directly), read when the cache resolves the model (a
    /// registration made after <c>AddERCache</c> counts). Two keys that differ only in case are refused, as two
    /// <c>AddModel</c> spellings are.
    /// </summary>
    /// <exception cref="InvalidOperationException">The inference is registered under two spellings of the name.</exception>
    private static string KeyOfInference(IServiceCollection services, string name)
    {
        string? found = null;
        foreach (var descriptor in services)
        {
            if (descriptor.IsKeyedService && descriptor.ServiceType == typeof(IEmbeddingInference) &&
                descriptor.ServiceKey is string key && string.Equals(key, name, StringComparison.OrdinalIgnoreCase) &&
                !string.Equals(key, found, StringComparison.Ordinal))
            {
                if (found is not null)
                {
                    throw new InvalidOperationException(
                        $"The inference of model '{name}' is registered as a keyed {nameof(IEmbeddingInference)} under both '{found}' and '{key}'; model names are case-insensitive, so register it once.");
                }

                found = key;
            }
        }

        return found ?? name;
    }

    /// <summary>
    /// The model names given to <c>AddModel</c>, one per service collection: one model is not registered in two
    /// spellings, and the start-up check finds the names no configured model matches.
    /// </summary>
    private sealed class ModelNames
    {
        private readonly Dictionary<string, string> _spellings = new(StringComparer.OrdinalIgnoreCase);
        private readonly Lock _lock = new();

        public static ModelNames Of(IServiceCollection services) => RegistrationState<ModelNames>(services);

        public void Register(string name)
        {
            lock (_lock)
            {
                if (_spellings.TryGetValue(name, out var registered))
                {
                    throw new ArgumentException(
                        $"The inference of model '{name}' is already registered (as '{registered}'); model names are case-insensitive.", nameof(name));
                }

                _spellings.Add(name, name);
            }
        }

        /// <summary>Every name given to <c>AddModel</c>.</summary>
        public IReadOnlyCollection<string> All
        {
            get
            {
                lock (_lock)
                {
                    return [.. _spellings.Values];
                }
            }
        }
    }
}
