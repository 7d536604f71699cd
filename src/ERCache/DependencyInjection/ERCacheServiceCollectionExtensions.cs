using ERCache;
using ERCache.Inference;
using ERCache.Policies;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers ERCache in an <see cref="IServiceCollection"/>.</summary>
public static class ERCacheServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="EmbeddingCache"/> (also as <see cref="IEmbeddingCache"/>) as a singleton, binding
    /// <see cref="ERCacheOptions"/> from the configuration section <paramref name="sectionPath"/>, validated at
    /// start-up and on every reload.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="sectionPath">The configuration section; <c>ERCache</c> by default.</param>
    /// <returns>A builder to register each model's inference with <see cref="AddModel(IERCacheBuilder, string, EmbeddingInference)"/>.</returns>
    public static IERCacheBuilder AddERCache(this IServiceCollection services, string sectionPath = ERCacheOptions.DefaultSectionPath)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(sectionPath);
        services.AddOptions<ERCacheOptions>().BindConfiguration(sectionPath).ValidateOnStart();
        return AddCore(services, sectionPath);
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
        services.AddOptions<ERCacheOptions>().Configure(configure).ValidateOnStart();
        return AddCore(services, ERCacheOptions.DefaultSectionPath);
    }

    /// <summary>Registers <paramref name="inference"/> as the inference of model <paramref name="name"/>.</summary>
    public static IERCacheBuilder AddModel(this IERCacheBuilder builder, string name, EmbeddingInference inference)
    {
        ArgumentNullException.ThrowIfNull(inference);
        return builder.AddModel(name, new DelegateInference(inference));
    }

    /// <summary>Registers <paramref name="inference"/> as the inference of model <paramref name="name"/>.</summary>
    public static IERCacheBuilder AddModel(this IERCacheBuilder builder, string name, IEmbeddingInference inference)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(inference);
        builder.Services.AddKeyedSingleton(name, inference);
        return builder;
    }

    /// <summary>Registers <typeparamref name="TInference"/>, created by the container, as the inference of model <paramref name="name"/>.</summary>
    public static IERCacheBuilder AddModel<TInference>(this IERCacheBuilder builder, string name)
        where TInference : class, IEmbeddingInference
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        builder.Services.AddKeyedSingleton<IEmbeddingInference, TInference>(name);
        return builder;
    }

    private static ERCacheBuilder AddCore(IServiceCollection services, string sectionPath)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ERCacheOptions>>(new ERCacheOptionsValidator(sectionPath)));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new EmbeddingCache(
            sp.GetRequiredService<IOptionsMonitor<ERCacheOptions>>(),
            name => sp.GetKeyedService<IEmbeddingInference>(name),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<System.Diagnostics.Metrics.IMeterFactory>(),
            sp.GetService<ILogger<EmbeddingCache>>(),
            sectionPath));
        services.TryAddSingleton<IEmbeddingCache>(sp => sp.GetRequiredService<EmbeddingCache>());
        return new ERCacheBuilder(services);
    }

    private sealed class ERCacheBuilder(IServiceCollection services) : IERCacheBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}

/// <summary>Chains per-model registrations after <c>AddERCache</c>.</summary>
public interface IERCacheBuilder
{
    /// <summary>The service collection ERCache was added to.</summary>
    IServiceCollection Services { get; }
}
